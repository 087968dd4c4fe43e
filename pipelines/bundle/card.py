"""The bundle's README.md: a model card with lineage, accuracy, measured latency and how to run.

Written by the bundle stage (pipelines/stages/bundle.py) once the numbers it reports are measured.
"""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from typing import Any

from modelkit.cpu import cpu_model
from pipelines.bench.artifacts import Artifact
from pipelines.bundle.edge_card import edge_section
from pipelines.bundle.verify import SUMS
from pipelines.core.context import StageContext
from pipelines.report.recommended_card import lineage
from pipelines.report.results_schema import load_results


def bench_rows(ctx: StageContext, name: str) -> list[dict[str, Any]]:
    rows = load_results(ctx.input_dir("report") / "results.json")
    return [
        r
        for r in rows
        if r["artifact"] == name
        and r.get("mode", "grid") == "grid"
        and r.get("device") == "cpu"
        and r.get("p50_ms") is not None
    ]


def hub_metadata(engine: str, precision: str, task_type: str = "single_label") -> list[str]:
    """The Hub's model-card metadata block, so `distillery push` ships a card the Hub indexes."""
    tag = "token-classification" if task_type == "token_classification" else "text-classification"
    return [
        "---",
        f"library_name: {engine}",
        f"pipeline_tag: {tag}",
        f"tags: [distillery, knowledge-distillation, {engine}, {precision}]",
        "---",
        "",
    ]


def bundle_card(
    ctx: StageContext,
    artifact: Artifact,
    chosen_by: str,
    config: dict[str, Any],
    reference: dict[str, Any],
    measured: dict[str, Any],
) -> str:
    """The bundle's README.md: what it is and its files, accuracy, latency, lineage, how to run."""
    out = [
        *_intro_and_files(ctx, artifact, chosen_by, config, reference),
        *_accuracy(ctx, artifact, config, reference, measured),
        *_latency(ctx, artifact, config, measured),
        *_lineage(ctx, artifact),
        *_how_to_run(config),
    ]
    return "\n".join(out)


def _intro_and_files(ctx, artifact: Artifact, chosen_by: str, config, reference) -> list[str]:
    engine = config.get("engine", "onnxruntime")
    runtime = _RUNTIMES[engine]
    texts = " + ".join(f"`{c}`" for c in config["text_columns"])
    model = (
        "the fine-tuned BERT teacher"
        if artifact.name.startswith("teacher")
        else "a student distilled from a BERT teacher"
    )
    out = [
        *hub_metadata(engine, artifact.precision, config.get("task_type", "single_label")),
        f"# {ctx.recipe.name}: `{artifact.name}` edge bundle",
        "",
        f"{what_it_predicts(config)} over "
        f"{texts}, truncated to {config['max_length']} tokens: {model}, trained by distillery "
        f"and exported to ONNX ({artifact.precision}, run by {runtime}"
        + (f" at precision hint {config['precision_hint']}" if config.get("precision_hint") else "")
        + f"). Chosen by {chosen_by}. Everything here runs with {engine}, tokenizers and numpy only.",
        "",
        "## Files",
        "",
        "| file | what |",
        "|---|---|",
        f"| `{config['model']}` | the `{artifact.name}` graph ({artifact.size_mb or 0:.2f} MB)"
        + (" with its weights in `model.bin`" if engine == "openvino" else "")
        + " |",
        "| `tokenizer.json` | the tokenizer it was trained and evaluated with |",
        "| `distillery.json` | labels, text columns, max length, graph input names, pad id |",
        "| `config.json`, `tokenizer_config.json` | the Hugging Face config (`id2label`) and "
        "tokenizer settings, for optimum and `pipeline()` |",
        "| `predict.py` | batch prediction: text or JSON lines in, JSON lines out |",
        f"| `requirements.txt` | {engine}, tokenizers, numpy, pinned to the versions measured |",
        "| `reference.json` | recorded accuracy, fingerprint of its eval rows, predictions hash |",
    ]
    if (ctx.out / "eval.jsonl").is_file():
        out.append(f"| `eval.jsonl` | the {reference['rows']} labelled eval rows, for `--verify` |")
    out += [f"| `{SUMS}` | sha256 of every file above (`sha256sum -c {SUMS}`) |", ""]
    return out


_RUNTIMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def _accuracy(ctx, artifact: Artifact, config, reference, measured) -> list[str]:
    r = ctx.recipe
    teacher_acc = (ctx.inputs["teacher"].get("metrics") or {}).get("accuracy")
    why_differs = (
        " (dynamic int8 quantizes each batch by its own range, so batch composition can flip a "
        "borderline row)"
        if artifact.precision == "int8"
        else " (float rounding differs with the padded width)"
    )
    return [
        "## Accuracy",
        "",
        f"- {reference['accuracy']:.4f}{score_name(config)} on the {reference['rows']} rows of "
        "the eval split "
        f"(`{r.data.source}`, split `{r.data.eval_split}`)"
        + (f"; the teacher scored {teacher_acc:.4f}" if teacher_acc is not None else ""),
        "- `predict.py --order input` reproduces the pipeline's predictions on those rows "
        "exactly (checked when the bundle was built, and by `distillery bundle --verify`); its "
        f"default length-batched order agrees on {measured['length_batched_agreement']:.2%} of "
        f"them{why_differs}.",
        "",
    ]


def _latency(ctx, artifact: Artifact, config, measured) -> list[str]:
    cold, steady = measured["cold_start"], measured["steady_state"]
    runtime = _RUNTIMES[config.get("engine", "onnxruntime")]
    threads = measured["threads"] or f"{runtime}'s default"
    out = [
        "## Latency",
        "",
        f"`predict.py` itself, on {cpu_model()} ({os.cpu_count()} cores), threads: {threads}, "
        f"Python {platform.python_version()}:",
        "",
        f"- cold start (python startup, imports, session, first prediction): "
        f"{cold['cold_start_s']:.3f} s, median of {cold['runs']} fresh processes (startup and "
        f"imports {cold['startup_import_s']:.3f} s, session {cold['session_s']:.3f} s, first "
        f"prediction {cold['first_prediction_s']:.3f} s)",
        f"- steady state: {steady['per_sentence_p50_ms']:.3f} ms per sentence (p50 of "
        f"{steady['repeats']} passes over {steady['sentences']} eval sentences, batches of "
        f"{steady['batch_size']} by length); one sentence per call {steady['single_p50_ms']:.3f} ms "
        "p50",
    ]
    grid = bench_rows(ctx, artifact.name)
    if grid:
        out += [
            "",
            "The pipeline's benchmark of the model alone (fixed shapes, no tokenization):",
            "",
            "| batch | seq | threads | p50 ms | p99 ms |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {g['batch']} | {g['seq']} | {g['threads']} | {g['p50_ms']:.3f} | "
            f"{g['p99_ms']:.3f} |"
            for g in grid
        ]
    out += ["", *edge_section(config, measured.get("edge") or {}, measured)]  # Node, browser, .ort
    return out


def _lineage(ctx, artifact: Artifact) -> list[str]:
    out = ["", "## Lineage", ""]
    steps = lineage(artifact.name, ctx.inputs)
    for stage in ("bench", "report"):
        steps.append(f"{stage}: hash `{ctx.inputs[stage].get('hash', '?')}`")
    out += [f"{i}. {step}" for i, step in enumerate(steps, 1)]
    out += [
        "",
        f"Built by distillery {metadata.version('distillery')} from `{ctx.run.path}`; the stage's "
        "manifest.json beside these files (when present) records the full configuration.",
        "",
    ]
    return out


def _how_to_run(config) -> list[str]:
    sample = json.dumps({c: "..." for c in config["text_columns"]})
    return [
        "## How to run",
        "",
        "```bash",
        f"pip install -r requirements.txt      # Python {platform.python_version()} was measured",
        'echo "a sentence to classify" | python predict.py',
        "python predict.py --input rows.txt --threads 2 --batch-size 32 > predictions.jsonl",
        f"sha256sum -c {SUMS}                  # integrity",
        "```",
        "",
        f"Input: one row per line, plain text or JSON (`{sample}`); blank lines are skipped. "
        "Output: one JSON line per row, in input order, "
        f"`{output_example(config)}`. Rows are "
        "batched by token length and right-padded with the true attention mask; `--order input` "
        "keeps input order in batches (bit-identical to the pipeline's evaluation).",
        "",
        "With distillery installed, `distillery bundle --verify DIR` checks the sums and reruns "
        "the eval split through predict.py against `reference.json`.",
        "",
    ]


def what_it_predicts(config: dict[str, Any]) -> str:
    labels, kind = config["labels"], config.get("task_type", "single_label")
    if kind == "regression":
        return f"A regression model (one value, {labels[0]})"
    if kind == "multi_label":
        return f"A multi-label tagger (any of {', '.join(labels)}; a sigmoid each)"
    if kind == "token_classification":
        return f"A token classifier (a BIO tag per word: {', '.join(labels)})"
    return f"A {len(labels)}-way text classifier ({', '.join(labels)})"


def output_example(config: dict[str, Any]) -> str:
    labels, kind = config["labels"], config.get("task_type", "single_label")
    if kind == "regression":
        return '{"line": 1, "value": 3.52}'
    if kind == "multi_label":
        return f'{{"line": 1, "labels": ["{labels[0]}"], "probabilities": {{...}}}}'
    if kind == "token_classification":
        return (
            '{"line": 1, "words": ["alice", "lives", "in", "oslo"], "tags": [...], '
            '"entities": [{"type": "PER", "start": 0, "end": 1, "text": "alice"}, ...]}'
        )
    return f'{{"line": 1, "label": "{labels[0]}", "score": 0.98}}'


def score_name(config: dict[str, Any]) -> str:
    """'' for accuracy; the metric's name for the task types whose score is another."""
    from modelkit.task_types import METRIC_LABELS, TASK_TYPES

    metric = TASK_TYPES[config.get("task_type", "single_label")].metric
    return "" if metric == "accuracy" else f" ({METRIC_LABELS[metric]})"

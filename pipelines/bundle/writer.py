"""Building a bundle: which artifact to ship, the files beside it and the pipeline's reference
predictions (predict.py's latency: `latency.py`). The bundle stage
(pipelines/stages/bundle.py) calls these in order."""

from __future__ import annotations

import json
import logging
import shutil
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from modelkit.batching import label_array
from modelkit.files import ONNX_FILES
from modelkit.task_types import TASK_TYPES
from pipelines.bench.artifacts import OV_FILES, Artifact, discover_artifacts
from pipelines.bundle.labelled_rows import gold_value, predicted_values
from pipelines.bundle.verify import SETTINGS, run_predict
from pipelines.core.context import StageContext
from pipelines.core.errors import DistilleryError, StageFailedError
from pipelines.core.runs import atomic_write_json, atomic_write_text
from pipelines.multitask.tasks import bundle_tasks
from pipelines.report.recommend import RecommendRule, recommend
from pipelines.report.results_schema import load_results

log = logging.getLogger("distillery")

# What predict.py imports, by the engine that runs the bundle's model.
REQUIREMENTS = {
    "onnxruntime": ("onnxruntime", "tokenizers", "numpy"),
    "openvino": ("openvino", "tokenizers", "numpy"),
}
SHIPPABLE = ("onnxruntime", "openvino")  # backends a bundle can carry
# The batch size with which each stage recorded an artifact's accuracy: the export stage runs
# onnx_logits at export.batch_size, the quantize stage at onnx_logits' default of 32. The
# reference must batch the same way: dynamic int8 scales each batch by its own range.
QUANTIZE_EVAL_BATCH = 32
# Tokenizer files shipped beside tokenizer.json for AutoTokenizer (special tokens, lower case).
HF_TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json")
PROBLEM_TYPES = {
    "single_label": "single_label_classification",
    "multi_label": "multi_label_classification",
    "regression": "regression",
}


def predict_source() -> str:
    return (resources.files("pipelines.bundle") / "files" / "predict.py").read_text()


def shippable_artifacts(run_path: Path) -> dict[str, Artifact]:
    """ONNX Runtime and OpenVINO artifacts, baselines left out: what a bundle can ship."""
    return {
        a.name: a
        for a in discover_artifacts(run_path)
        if a.backend in SHIPPABLE and a.role != "baseline"
    }


def choose_artifact(ctx: StageContext) -> tuple[Artifact, str]:
    """(artifact, why it was chosen); DistilleryError listing the shippable artifacts otherwise."""
    available = shippable_artifacts(ctx.run.path)
    names = ", ".join(available) or "none (run the export stage)"
    wanted = ctx.recipe.bundle.artifact
    if wanted:
        if wanted in available:
            return available[wanted], "bundle.artifact"
        others = {a.name: a for a in discover_artifacts(ctx.run.path)}
        found = others.get(wanted)
        if found is None:
            why = "unknown"
        elif found.role == "baseline":
            why = (
                "is the peer baseline (optimum-cli's own int8, measured for the report's "
                "comparison), not one of this run's models, so it is not shipped"
            )
        else:
            why = (
                f"is a {found.backend} artifact, and a bundle ships ONNX Runtime or OpenVINO models"
            )
        raise DistilleryError(
            f"bundle.artifact {wanted!r}: {why}. Available: {names}. Pick one with "
            "`distillery bundle RECIPE --artifact NAME` or --set bundle.artifact=NAME."
        )
    recommended = ctx.inputs["report"].get("recommended")
    withheld = ctx.inputs["report"].get("withheld")
    if recommended in available:
        return available[recommended], "the report's recommendation"
    # The rule may pick a PyTorch or Neural Compressor model; the same rule among shippable ones.
    rows = load_results(ctx.input_dir("report") / "results.json")
    rule = RecommendRule(min_retained=ctx.recipe.bench.min_retained, serve=ctx.recipe.bench.serve)
    best = recommend([r for r in rows if r["artifact"] in available], ctx.inputs, rule)
    if best is not None:
        why = (
            f"the report withheld its recommendation ({withheld})"
            if withheld
            else f"its pick, {recommended!r}, is not shippable"
        )
        return available[best["artifact"]], f"the report's rule among shippable artifacts: {why}"
    if not available:
        raise DistilleryError(
            f"bundle: no shippable artifact in {ctx.run.path}; run the export stage."
        )
    # Nothing keeps the teacher's accuracy: ship the most accurate rather than fail the last
    # stage of a finished pipeline; the model card and the log say so.
    top = max(available.values(), key=lambda a: a.accuracy if a.accuracy is not None else -1)
    log.warning("bundle: no shippable artifact meets the report's rule; shipping %s", top.name)
    return top, (
        f"highest accuracy among shippable artifacts: none meets the report's rule "
        f"({rule.describe()}); pick another with --artifact NAME"
    )


def recorded_batch_size(artifact: Artifact, recipe) -> int:
    return recipe.export.batch_size if artifact.stage == "export" else QUANTIZE_EVAL_BATCH


def artifact_tokenizer(ctx: StageContext, artifact: Artifact):
    """The HF tokenizer the pipeline evaluated this artifact with, and the folder holding it."""
    from transformers import AutoTokenizer

    folder = Path(artifact.path)
    if not (folder / "tokenizer_config.json").is_file():
        folder = ctx.input_dir("teacher" if artifact.name.startswith("teacher") else "distill")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.is_fast:
        raise DistilleryError(
            f"{folder}: the tokenizer is not a fast (Rust) tokenizer, so there is no "
            "tokenizer.json for predict.py; save it with a fast tokenizer class."
        )
    return tokenizer, folder


def requirements(engine: str = "onnxruntime") -> str:
    lines = []
    for name in REQUIREMENTS[engine]:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name != "onnxruntime":
                raise
            version = metadata.version("onnxruntime-gpu")  # same API; the CPU wheel suits edges
        lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def clear(out: Path) -> None:
    """Empty the stage folder but for the runner's log: files of an earlier bundle (another
    artifact's external weights, an eval.jsonl no longer wanted) must not linger unlisted."""
    for path in out.iterdir():
        if path.name == "log.txt":
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def write_hf_config(out: Path, sources: list[Path], recipe) -> None:
    """The model's Hugging Face config.json with the recipe's label names, so `id2label` gives
    pipeline() the bundle's labels; nothing is written where no source has one (a foreign
    artifact), and the bundle still works through predict.py."""
    found = next((f / "config.json" for f in sources if (f / "config.json").is_file()), None)
    if found is None:
        log.warning(
            "bundle: no Hugging Face config.json beside the artifact; optimum can't load it"
        )
        return
    config = json.loads(found.read_text())
    config.pop("auto_map", None)  # a teacher's own code is not shipped (nor trusted) here
    labels = list(recipe.task.labels)
    config["id2label"] = {str(i): name for i, name in enumerate(labels)}
    config["label2id"] = {name: i for i, name in enumerate(labels)}
    if recipe.task.type in PROBLEM_TYPES:
        config["problem_type"] = PROBLEM_TYPES[recipe.task.type]
    atomic_write_json(out / "config.json", config)


def write_files(ctx: StageContext, artifact: Artifact, tokenizer, tok_folder: Path) -> dict:
    """Copy the model and tokenizer; write distillery.json, the HF config.json, predict.py and
    requirements.txt."""
    out, r = ctx.out, ctx.recipe
    source = Path(artifact.path)
    for name in model_files(artifact):
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    if (tok_folder / "tokenizer.json").is_file():
        shutil.copy2(tok_folder / "tokenizer.json", out / "tokenizer.json")
    else:
        tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    for name in HF_TOKENIZER_FILES:
        if (tok_folder / name).is_file():
            shutil.copy2(tok_folder / name, out / name)
    if artifact.backend == "openvino":
        from quantize.openvino import PRECISION_HINT, OVClassifier

        model = OVClassifier(out)
        inputs, output = model.input_names, model.model.outputs[0].get_any_name() or "logits"
        engine = {"engine": "openvino", "model": "model.xml", "precision_hint": PRECISION_HINT}
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
        inputs = [i.name for i in session.get_inputs()]
        names = [o.name for o in session.get_outputs()]
        output = "logits" if "logits" in names else names[0]
        engine = {"engine": "onnxruntime", "model": "model.onnx"}
    config = {
        "name": r.name,
        "artifact": artifact.name,
        "precision": artifact.precision,
        **engine,
        "task_type": r.task.type,
        "labels": list(r.task.labels),
        "text_columns": list(r.task.text_columns),
        "label_column": r.task.label_column,
        "max_length": r.data.max_length,
        "input_names": inputs,
        "output_name": output,
        "pad_token_id": tokenizer.pad_token_id,
        "padding_side": "right",
        "truncation": "longest_first",
        "batch_size": r.bundle.batch_size,
    }
    config.update(bundle_tasks(r, source))  # a multi-task graph: `predict.py --task NAME`
    atomic_write_json(out / SETTINGS, config)
    write_hf_config(out, [source, tok_folder], r)
    atomic_write_text(out / "predict.py", predict_source())
    atomic_write_text(out / "requirements.txt", requirements(config["engine"]))
    return config


def model_files(artifact: Artifact) -> tuple[str, ...]:
    return OV_FILES if artifact.backend == "openvino" else ONNX_FILES


def reference_predictions(ctx: StageContext, artifact: Artifact, tokenizer) -> dict[str, Any]:
    """The pipeline's own predictions (onnxruntime in-process), batched as it recorded them."""
    from export.parity import onnx_logits
    from pipelines.data.loading import tokenize

    eval_set = tokenize(ctx.data().eval, tokenizer, ctx.recipe)
    batch = recorded_batch_size(artifact, ctx.recipe)
    if artifact.backend == "openvino":
        from modelkit.batching import padded_batches
        from quantize.openvino import OVClassifier, openvino_logits

        batches = (b for _, b in padded_batches(eval_set, tokenizer.pad_token_id, batch))
        logits = openvino_logits(OVClassifier(artifact.path), batches)
    else:
        logits = onnx_logits(Path(artifact.path) / "model.onnx", eval_set, tokenizer, batch)
    kind, names = TASK_TYPES[ctx.recipe.task.type], list(ctx.recipe.task.labels)
    # what predict.py reports, so the two compare exactly (token classification: per word)
    predicted = kind.values(logits, label_array(eval_set["labels"]))
    gold = [gold_value(kind.name, v) for v in eval_set["labels"]]
    accuracy = kind.score_values(predicted, gold, len(names), names)
    # regression scores the 6-decimal values predict.py prints: equal to ~1e-6, not bit for bit
    tolerance = 1e-5 if kind.name == "regression" else 0.0
    if artifact.accuracy is not None and abs(accuracy - artifact.accuracy) > tolerance:
        log.warning(
            "%s: accuracy recomputed in-process %.6f differs from the recorded %.6f; the bundle's "
            "reference keeps the recomputed one",
            artifact.name,
            accuracy,
            artifact.accuracy,
        )
    return {"predicted": predicted, "accuracy": accuracy, "batch_size": batch}


def check_bundle_predictions(
    out: Path, eval_path: Path, reference: dict[str, Any], config: dict[str, Any]
) -> float:
    """predict.py must give the reference's predictions; returns its length-batched agreement."""
    same = predicted_values(
        run_predict(out, eval_path, order="input", batch_size=reference["batch_size"]), config
    )
    expected = reference["predicted"]
    if same != expected:
        wrong = [i for i, (a, b) in enumerate(zip(same, expected, strict=True)) if a != b]
        raise StageFailedError(
            f"{out}/predict.py disagrees with onnxruntime on the same artifact on {len(wrong)} of "
            f"{len(expected)} eval rows (first: row {wrong[0]}). The bundle's tokenizer.json or "
            "padding differs from the pipeline's; the bundle is not usable as built."
        )
    fast = predicted_values(run_predict(out, eval_path, order="length"), config)
    # other padding, other float rounding: regression agrees within 1% of the range
    kind = TASK_TYPES[config.get("task_type", "single_label")]
    return kind.agreement_values(expected, fast, len(config["labels"]))

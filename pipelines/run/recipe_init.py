"""`distillery init DATA --teacher MODEL`: a recipe proposed from one look at the data.

It reads the data once (`pipelines.data.survey`), proposes the text and label columns, the label
names and the task type, sizes the eval split, epochs and max_length to the data, says what it
decided and why, and writes a recipe whose header is the command that runs it and whose keys
each carry the reason for their value. Problems with the columns or labels are reported all at
once, before anything is written.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from pipelines.core.errors import DataError
from pipelines.data.confidence import eval_size_note, interval_halfwidth
from pipelines.data.survey import Proposal, Table, eval_rows, propose, read_table

SAMPLE = 2000  # rows whose token lengths size max_length
EVAL_TARGET = 400  # eval rows aimed for: ±0.03 on an accuracy of 0.9


def teacher_facts(model: str) -> dict[str, Any]:
    """What a local teacher folder's config.json says (no weights loaded): its layers, its
    classification labels if fine-tuned. A hub id: nothing known offline, fine-tuned from base."""
    path = Path(model) / "config.json"
    if not path.is_file():
        return {"local": False}
    config = json.loads(path.read_text())
    labels = [
        config.get("id2label", {}).get(str(i)) for i in range(len(config.get("id2label", {})))
    ]
    classifier = any(
        a.endswith("ForSequenceClassification") for a in config.get("architectures", [])
    )
    generic = all(str(name).startswith("LABEL_") for name in labels)
    return {
        "local": True,
        "layers": config.get("num_hidden_layers"),
        "max_positions": config.get("max_position_embeddings"),
        "labels": labels if classifier and not generic else None,
    }


def eval_fraction(rows: int) -> float:
    """The share of one file held out so the eval split has ~EVAL_TARGET rows (0.01..0.3)."""
    return min(0.3, max(0.01, math.ceil(100 * EVAL_TARGET / max(rows, 1)) / 100))


def epochs_for(rows: int) -> int:
    """Fewer rows need more passes to take the same number of steps."""
    return 10 if rows < 1000 else 5 if rows < 5000 else 3 if rows < 50000 else 2


def max_length(table: Table, columns: list[str], teacher: str, facts: dict) -> tuple[int, str]:
    """The 99th percentile of token lengths over a sample, up to a multiple of 8 (16..512)."""
    rows = list(zip(*(table.values[c][:SAMPLE] for c in columns), strict=True))
    rows = [r for r in rows if all(isinstance(x, str) for x in r)]
    if facts["local"] and (Path(teacher) / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(teacher, trust_remote_code=False)
        lengths = [len(tokenizer(*r)["input_ids"]) for r in rows]
        how = "the teacher's tokenizer"
    else:
        lengths = [math.ceil(1.3 * sum(len(x.split()) for x in r)) + 2 + len(r) for r in rows]
        how = "whitespace words x 1.3 (no local tokenizer)"
    lengths.sort()
    p99 = lengths[min(len(lengths) - 1, int(0.99 * len(lengths)))] if lengths else 16
    cap = min(512, facts.get("max_positions") or 512)
    chosen = min(cap, max(16, 8 * math.ceil(p99 / 8)))
    return chosen, f"99% of {len(lengths)} sampled rows fit in {p99} tokens ({how})"


def decide(table: Table, proposal: Proposal, teacher: str) -> dict[str, tuple[Any, str]]:
    """Recipe key → (value, why), for the keys `init` sets."""
    facts, p = teacher_facts(teacher), proposal
    rows = len(next(iter(table.values.values())))
    out: dict[str, tuple[Any, str]] = {
        "task.type": (p.task_type, p.why.get("type", "")),
        "task.text_columns": (p.text_columns, p.why["text_columns"]),
        "task.label_column": (p.label_column, p.why["label_column"]),
        "task.labels": (p.labels, p.why.get("labels", "in index order")),
    }
    fine_tuned = facts.get("labels") and sorted(facts["labels"]) == sorted(p.labels)
    if fine_tuned:  # the head's order is the index order the teacher answers in
        out["task.labels"] = (facts["labels"], "the teacher's id2label order (config.json)")
    if table.eval_rows is None:
        fraction = eval_fraction(rows)
        held = math.ceil(rows * fraction)
        out["data.eval_fraction"] = (
            fraction,
            f"{held} of {rows} rows held out for evaluation: accuracy ±"
            f"{interval_halfwidth(0.9, held):.3f} at 0.9 (95% interval)",
        )
    train_rows = rows - (
        0 if table.eval_rows is not None else math.ceil(rows * eval_fraction(rows))
    )
    length, why = max_length(table, p.text_columns, teacher, facts)
    out["data.max_length"] = (length, why)
    out["teacher.model"] = (teacher, "local folder" if facts["local"] else "hub id")
    if fine_tuned:
        out["teacher.finetune"] = (False, "its classification head already has these labels")
    else:
        out["teacher.epochs"] = (epochs_for(train_rows), f"{train_rows} train rows")
    if facts.get("layers"):
        layers = list(range(0, facts["layers"], 2))
        out["student.layers"] = (
            layers,
            f"every other one of the teacher's {facts['layers']} layers",
        )
    out.update(distill_keys(train_rows))
    return out


def distill_keys(train_rows: int) -> dict[str, tuple[Any, str]]:
    """`distill.auto: true` with what it will choose for this many rows; below the small-data
    threshold the schedule is left to it (a `distill.epochs` written here would be kept as set)."""
    from pipelines.core.config import DistillConfig
    from pipelines.distillation.auto_defaults import SMALL_DATA_ROWS, sized

    _, record = sized(DistillConfig(auto=True), train_rows)
    if train_rows >= SMALL_DATA_ROWS:
        return {
            "distill.auto": (True, f"{record['reason']}; sizes the defaults if the data shrinks"),
            "distill.epochs": (epochs_for(train_rows), f"{train_rows} train rows"),
        }
    factor, epochs = record["augment.factor"]["value"], record["epochs"]["value"]
    why = (
        f"{train_rows:,} train rows < {SMALL_DATA_ROWS:,} (small data, docs/recipes.md): the "
        f"distill stage adds {factor:g} teacher-labelled augmented rows per row (Tang et al.'s "
        f"word masking and replacement), matches hidden states and trains {epochs:g} epochs "
        f"({record['training_rows']:,} rows); set distill.augment.factor, distill.matches or "
        "distill.epochs to choose yourself; unlabelled text from the same source "
        "(distill.unlabelled: PATH) keeps as much of the teacher with no matches (BENCHMARKS.md)"
    )
    return {"distill.auto": (True, why)}


def _yaml(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def recipe_text(name: str, source: str, command: str, keys: dict[str, tuple[Any, str]]) -> str:
    """The recipe file: the run command first, then each section's keys with their reasons."""
    sections: dict[str, list[str]] = {
        "task": [],
        "data": [f"  source: {_yaml(source)}  # the data init read"],
        "teacher": ["  init: pretrained  # a checkpoint's weights (local folder or hub id)"],
    }
    for key, (value, why) in keys.items():
        section, leaf = key.split(".", 1)
        sections.setdefault(section, []).append(f"  {leaf}: {_yaml(value)}  # {why}")
    lines = [
        f"# Run: distillery run {command}",
        "# Written by distillery init; each value says why it was chosen. Check, then run.",
        f"name: {name}  # run folder: runs/{name}/",
    ]
    for section, body in sections.items():
        lines += [f"{section}:", *body]
    return "\n".join(lines) + "\n"


def init_recipe(
    data: str, teacher: str, name: str | None = None, output: str | None = None
) -> tuple[Path, str]:
    """Read `data`, decide, write the recipe; (path, what was decided and why) for printing."""
    table = read_table(data)
    proposal = propose(table)
    if proposal.problems:
        raise DataError(
            f"{len(proposal.problems)} problem(s) in {data}:\n  - "
            + "\n  - ".join(proposal.problems)
        )
    name = name or Path(data.rstrip("/")).stem.replace(".", "-") or "my-run"
    path = Path(output or f"recipes/{name}.yaml")
    keys = decide(table, proposal, teacher)
    source = (
        data
        if not Path(data).exists()
        else os.path.relpath(Path(data).resolve(), path.parent.resolve())
    )
    text = recipe_text(name, source, str(path), keys)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    from pipelines.core.config import load_recipe

    load_recipe(str(path), [])  # what init wrote must validate as any recipe does
    said = [f"{key}: {_yaml(value)}  ({why})" for key, (value, why) in keys.items()]
    note = eval_size_note(eval_rows(table, keys.get("data.eval_fraction", (0.1, ""))[0]))
    if note:
        said.append(f"note: {note}")
    said.append(f"wrote {path}; run it with: distillery run {path}")
    return path, "\n".join(said)

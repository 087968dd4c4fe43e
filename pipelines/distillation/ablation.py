"""The ablation: the same student trained several ways, each with its fp32 and int8 accuracy.

Variants (`distill.ablation_variants`, in this order; those the recipe cannot make are left out):
- `labels_only`: task cross-entropy alone (the student without its teacher);
- `logits_kd`: task + logit KD;
- `kd_augment`: task + KD on the augmented training set (needs `distill.augment`);
- `kd_matches`: + the recipe's intermediate matches (hidden_mse, attention_kl when it has none);
  `kd_augment_matches` on the augmented set;
- `two_step`: the same matches in TinyBERT's two steps (matches alone, then logits);
- `minilm`: + MiniLM's attention distributions and value relation (attention_kl, value_relation);
- `+qat`: the recipe's own run after quantization-aware distillation (`distill.qat`), its int8
  accuracy that of the exported QDQ graph (added whenever the recipe has QAT).

Every variant but `labels_only` and `logits_kd` trains on the augmented set when there is one. A
variant whose loss and data equal the recipe's own reuses the main run instead of training the
same thing twice. int8 accuracy is ONNX Runtime dynamic int8 of the variant's student (the
`dynamic` method's defaults), measured on the eval split like the quantize stage measures it.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from distill.weights import DEFAULT_WEIGHTS, MATCH_WEIGHT, full_weights
from pipelines.core.config import ABLATION_VARIANTS, DistillConfig
from pipelines.core.distributed import is_main
from pipelines.core.runs import atomic_write_json, atomic_write_text
from pipelines.distillation.loss import loss_spec
from pipelines.distillation.training import train_student
from pipelines.train.evaluation import evaluate_model

DEFAULT_MATCHES = ["hidden_mse", "attention_kl"]
MINILM_MATCHES = ["attention_kl", "value_relation"]
VARIANTS = ABLATION_VARIANTS  # names (and order) in pipelines.core.config, built here


@dataclass
class Variant:
    name: str  # the row's name in the table
    config: DistillConfig  # the recipe's distill section, changed to this variant
    augmented: bool  # trained on the augmented training set


def variants(d: DistillConfig, augmented: bool) -> list[Variant]:
    """The rows `d.ablation_variants` asks for that this recipe can make, in VARIANTS order."""
    kd = {
        "task": d.weights.get("task", DEFAULT_WEIGHTS["task"]),
        "kd": d.weights.get("kd") or DEFAULT_WEIGHTS["kd"],  # KD variants need a KD term
    }
    matches = d.matches or DEFAULT_MATCHES
    on_set = "_augment" if augmented else ""

    def variant(weights: dict, with_matches: list[str], two_step: float = 0.0) -> DistillConfig:
        base = copy.deepcopy(d)
        base.matches = list(with_matches)
        base.weights = {**weights, **{m: d.weights.get(m, MATCH_WEIGHT) for m in base.matches}}
        base.weight_schedules = {k: v for k, v in d.weight_schedules.items() if k in base.weights}
        base.two_step = two_step
        return base

    made = {
        "labels_only": Variant("labels_only", variant({"task": 1.0, "kd": 0.0}, []), False),
        "logits_kd": Variant("logits_kd", variant(kd, []), False),
        "kd_matches": Variant(f"kd{on_set}_matches", variant(kd, matches), augmented),
        "two_step": Variant(
            f"kd{on_set}_two_step", variant(kd, matches, d.two_step or 1.0), augmented
        ),
        "minilm": Variant(f"kd{on_set}_minilm", variant(kd, MINILM_MATCHES), augmented),
    }
    if augmented:
        made["kd_augment"] = Variant("kd_augment", variant(kd, []), True)
    return [made[name] for name in VARIANTS if name in d.ablation_variants and name in made]


def ablation_spec(variant: str, d: DistillConfig) -> DistillConfig:
    """The recipe's distill section, changed to one ablation variant (without augmentation)."""
    everything = d.model_copy(update={"ablation_variants": list(VARIANTS)})
    return next(v.config for v in variants(everything, augmented=False) if v.name == variant)


def int8_accuracy(student, tokenizer, eval_set) -> float:
    """Dynamic int8 (ONNX Runtime, this CPU's preset) of `student`, evaluated on the eval split."""
    import numpy as np

    from export.parity import onnx_logits
    from quantize.ort_dynamic import quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="distillery-ablation-") as tmp:
        folder = Path(tmp)
        student.save_pretrained(folder / "model", safe_serialization=True)
        tokenizer.save_pretrained(folder / "model")
        plain_onnx(student, folder / "model", folder / "onnx")
        quantize_dynamic(folder / "onnx" / "model.onnx", folder / "int8" / "model.onnx", "auto")
        logits = onnx_logits(folder / "int8" / "model.onnx", eval_set, tokenizer)
    return float((logits.argmax(-1) == np.asarray(eval_set["labels"])).mean())


def plain_onnx(model, model_dir: Path, out: Path) -> None:
    """`model`, saved in `model_dir`, as a plain ONNX graph in `out`: a token-vector student
    (static, cnn, bilstm) through torch.onnx, which optimum does not know; a transformer through
    optimum's exporter (the export stage's own choice, `pipelines.stages.export`)."""
    from distill.token_students import is_token_student

    if is_token_student(model.config):
        from export.module_export import export_module

        export_module(model, out)
    else:
        from export.onnx_export import export_classifier

        export_classifier(model_dir, out)


def run_ablation(
    ctx, teacher, initial, tokenizer, plain, augmented, eval_set, device, copied, main_row: dict
) -> dict:
    """Train the same student each way and write ablation.json / ablation.md in the stage folder.

    `plain` and `augmented` are (dataset, cached teacher logits or None); `augmented` is None
    when the recipe makes no augmented set. `main_row` describes the recipe's own run.
    """
    d = ctx.recipe.distill
    rows = []
    for v in variants(d, augmented is not None):
        cfg = v.config
        weights = full_weights(cfg.weights, cfg.matches)
        same = (
            cfg.matches == main_row["matches"]
            and weights == main_row["weights"]
            and v.augmented == main_row["augment"]
            and (cfg.two_step if cfg.matches else 0.0) == main_row["two_step"]
        )
        if same:
            rows.append({"variant": v.name, **main_row, "reused_main_run": True})
            continue
        dataset, logits = augmented if v.augmented else plain
        spec = loss_spec(
            cfg, initial.config.num_hidden_layers, teacher.config.num_hidden_layers, copied
        )
        out = ctx.out / "ablation" / v.name
        started = time.time()
        student = copy.deepcopy(initial)
        live = spec.needs_teacher_features and not cfg.two_step  # one run matching features
        trainer, _, _ = train_student(
            ctx,
            teacher,
            student,
            tokenizer,
            dataset,
            spec,
            out,
            None if live else logits,
            two_step_epochs=cfg.two_step,
            save_strategy="no",
        )
        seconds = time.time() - started
        student = trainer.model.student
        metrics, _ = evaluate_model(student, eval_set, tokenizer, d.eval_batch_size, device, v.name)
        rows.append(
            {
                "variant": v.name,
                "accuracy": metrics["accuracy"],
                "int8_accuracy": int8_accuracy(student, tokenizer, eval_set),
                "seconds": round(seconds, 1),
                "train_rows": len(dataset),
                "weights": cfg.weights,
                "matches": cfg.matches,
                "two_step": cfg.two_step if cfg.matches else 0.0,
            }
        )
        if is_main():
            shutil.rmtree(out, ignore_errors=True)
    if main_row.get("qat"):
        qat = main_row["qat"]
        rows.append(
            {
                **main_row,
                "variant": "+qat",
                "int8_accuracy": qat.get("int8_accuracy", qat["fake_quant_accuracy"]),
                "seconds": round(main_row["seconds"] + qat["seconds"], 1),
                "reused_main_run": True,
            }
        )
    write_table(ctx, rows)
    return {"rows": rows, "table": "ablation.md"}


def write_table(ctx, rows: list[dict]) -> None:
    base = rows[0]["accuracy"]
    lines = [
        f"| variant | fp32 accuracy | int8 accuracy | Δ fp32 vs {rows[0]['variant']} (points) | "
        "train seconds | train rows | weights | matches |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        row["delta_points"] = round(100 * (row["accuracy"] - base), 2)
        int8 = row.get("int8_accuracy")
        lines.append(
            f"| {row['variant']} | {row['accuracy']:.4f} | "
            f"{'–' if int8 is None else f'{int8:.4f}'} | {row['delta_points']:+.2f} | "
            f"{row['seconds']} | {row.get('train_rows', '–')} | {json.dumps(row['weights'])} | "
            f"{_matches(row)} |"
        )
    if is_main():
        atomic_write_json(ctx.out / "ablation.json", rows)
        atomic_write_text(ctx.out / "ablation.md", "\n".join(lines) + "\n")
        shutil.rmtree(ctx.out / "ablation", ignore_errors=True)


def _matches(row: dict) -> str:
    text = ", ".join(row["matches"]) or "-"
    return (
        f"{text} (two steps, {row['two_step']:g} epochs of matches first)"
        if row.get("two_step")
        else text
    )

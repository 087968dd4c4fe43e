"""The int8 methods the quantize stage runs: one registry, `METHODS`, one entry per method.

    job = Job(out=Path("run/quantize/student-int8-static"), settings=recipe.quantize,
              preset=preset, onnx=Path("run/export/student-onnx/model.onnx"), calibration=rows)
    record = run_method("static", job)      # writes the artifact into job.out; what was done

A method is a function `quantize_job(job: Job) -> dict` in its own module (write the artifact into
`job.out`, return its record; raise `Skipped` for input it does not take) and an entry here:
- `run`: that function, named "module:function" and imported when the method runs, so that
  reading this registry (recipe validation does) imports no backend; a callable also works;
- `needs`: what the stage hands it (`NEEDS`): the fp32 ONNX export, calibration rows, the
  PyTorch student with the eval rows, the distill stage's quantization-aware export;
- `backend`: the runtime that runs the artifact, a bench backend name
  (`pipelines.bench.backends.BACKENDS`): the stage computes the artifact's eval accuracy with it,
  so the gate measures what will run, and the bench times it with it;
- `extra`: the optional install it needs (`EXTRAS`: without it the method is skipped, with why);
- `refuses`: errors of its runtime meaning "this graph cannot run here" (skipped, not failed).

Methods needing `qat` are not named in a recipe: they run whenever the distill stage trained with
fake-quant (`distill.qat`); `follows` names the recipe method that must be chosen too. The recipe's
allowed `quantize.methods` are the others (`recipe_methods`), read when a recipe is validated.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelkit.errors import InputError
from quantize.presets import QuantPreset

# What a method may need → the Job fields the stage fills for it (the others stay None).
NEEDS = {
    "onnx": ("onnx", "onnx_fused"),
    "calibration": ("calibration",),
    "model": ("model", "tokenizer", "eval_rows", "labels"),
    "qat": ("qat", "qat_dir"),
}
# Optional installs → "module:function" returning None when present, else what to install.
EXTRAS = {"openvino": "quantize.openvino:available"}


class Skipped(Exception):
    """A method that does not take this input (e.g. a head it cannot quantize): the message says
    why, and the stage records it instead of an artifact."""


@dataclass(frozen=True)
class Job:
    """What the quantize stage hands a method; fields of needs it did not declare are None."""

    out: Path  # the artifact's folder
    settings: Any  # the recipe's `quantize` section (per_channel, calibration, inc, openvino, ...)
    preset: QuantPreset  # int8 settings for the target CPU
    pad_token_id: int = 0
    onnx: Path | None = None  # "onnx": the fp32 export's model.onnx (plain graph)
    onnx_fused: Path | None = None  # ... and its ORT-fused variant, when one was exported
    calibration: Callable[[int], Any] | None = None  # "calibration": n → n training rows (seeded)
    model: Any = None  # "model": the PyTorch student, its tokenizer, the tokenized eval rows
    tokenizer: Any = None
    eval_rows: Any = None
    labels: Any = None  # ... and their labels (numpy)
    task_type: str = "single_label"  # modelkit.task_types name
    qat: dict | None = None  # "qat": the distill stage's record of its fake-quant QDQ export
    qat_dir: Path | None = None  # ... and the folder holding its model.onnx


@dataclass(frozen=True)
class Method:
    """One int8 method: where its function is, what it needs, what runs its artifact."""

    run: str | Callable[[Job], dict]  # "module:function" (imported when it runs) or a callable
    needs: tuple[str, ...] = ("onnx",)  # keys of NEEDS
    backend: str = "onnxruntime"  # runs the artifact: scores it for the gate, times it in the bench
    extra: str | None = None  # key of EXTRAS: the optional install it needs
    refuses: tuple[type[Exception], ...] = ()  # runtime errors that skip it rather than fail
    follows: str | None = None  # a `qat` method: runs only when the recipe chose this method too

    def __post_init__(self) -> None:
        unknown = sorted(set(self.needs) - set(NEEDS))
        if unknown:
            raise ValueError(f"Method needs {unknown}: unknown; choose from {sorted(NEEDS)}")
        if self.extra is not None and self.extra not in EXTRAS:
            raise ValueError(f"Method extra {self.extra!r}: unknown; choose from {sorted(EXTRAS)}")


METHODS: dict[str, Method] = {
    "dynamic": Method("quantize.ort_dynamic:quantize_job"),
    "static": Method("quantize.ort_static:quantize_job", needs=("onnx", "calibration")),
    "inc": Method(
        "quantize.inc_autotune:quantize_job", needs=("model", "calibration"), backend="inc"
    ),
    "qat": Method("quantize.qat:import_job", needs=("qat",)),
    "qat-openvino": Method(
        "quantize.openvino:qat_job",
        needs=("qat",),
        backend="openvino",
        extra="openvino",
        follows="openvino",
    ),
    "openvino": Method(
        "quantize.openvino:quantize_job",
        needs=("onnx", "calibration"),
        backend="openvino",
        extra="openvino",
        refuses=(RuntimeError,),  # the CPU plugin refused the graph (e.g. a folding check)
    ),
}


def _resolve(ref: str | Callable) -> Callable:
    if callable(ref):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def recipe_methods() -> list[str]:
    """The names a recipe's `quantize.methods` may list, in registry order."""
    return [name for name, method in METHODS.items() if "qat" not in method.needs]


def check_method(name: str) -> str:
    """`name`, if a recipe may choose it; else an InputError listing the allowed names."""
    allowed = recipe_methods()
    if name not in allowed:
        raise InputError(f"{name!r} is not allowed. Allowed values: {', '.join(sorted(allowed))}.")
    return name


def chosen(methods: Iterable[str], trained: bool) -> list[str]:
    """The methods to run, in registry order: those the recipe names and, when the distill stage
    trained with fake-quant (`trained`), those taking its export that follow a chosen method."""
    names = set(methods)

    def runs(name: str, m: Method) -> bool:
        if "qat" in m.needs:
            return trained and (m.follows is None or m.follows in names)
        return name in names

    return [name for name, m in METHODS.items() if runs(name, m)]


def missing_extra(name: str) -> str | None:
    """None when method `name` can run here, else what to install."""
    extra = METHODS[name].extra
    return _resolve(EXTRAS[extra])() if extra else None


def job_for(name: str, full: Job, out: Path) -> Job:
    """`full` narrowed to what method `name` declared it needs, writing into `out`."""
    needs = METHODS[name].needs
    unused = [field for need, fields in NEEDS.items() if need not in needs for field in fields]
    return replace(full, out=Path(out), **dict.fromkeys(unused))


def run_method(name: str, job: Job) -> dict:
    """Method `name` on `job`: its record (what it wrote into `job.out`)."""
    return _resolve(METHODS[name].run)(job)

"""The runtimes that run an artifact: one registry, `BACKENDS`, one entry per bench backend.

    runner = load(job)                                   # in a bench worker: BACKENDS[...].loader
    logits = eval_logits("openvino", path, rows, tok)   # the accuracy the quantize stage records

An entry says how a bench worker loads the artifact (`loader`, named by string as
"module:function" and imported only in the worker, so that reading this registry imports no
backend), which module the worker imports first (to time the import apart from the load), the
optional extra it needs, which files make its artifact (`marker`: the file that says one is there;
`files`: what its size on disk counts), how its eval logits are computed (the quantize stage
measures each int8 artifact's accuracy with the runtime that will run it; a function here that
imports its runtime when called), and its name in prose.

To add a backend: a loader in `pipelines/bench/loaders.py` returning a `Runner`, an entry here.
The quantize stage records each int8 artifact's backend in its manifest entry (`bench_backend`);
`pipelines.bench.artifacts` reads it from there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelkit.errors import lookup
from modelkit.files import WEIGHT_FILES


@dataclass(frozen=True)
class Backend:
    """One runtime: how the bench loads an artifact, what it needs, how it scores the eval split."""

    loader: str  # "module:function": job dict → pipelines.bench.loaders.Runner (bench worker)
    module: str  # imported first by the worker: its import is timed apart from the load
    label: str  # the runtime's name in prose (skip reasons, model cards)
    marker: str  # the file in an artifact's folder that says the artifact is there
    files: tuple[str, ...] = WEIGHT_FILES  # the model files: the artifact's size on disk
    extra: str | None = None  # pip extra it needs (pyproject optional-dependencies)
    logits: Callable[[Any, Any, Any], Any] | None = None  # (path, rows, tokenizer) → eval logits


def _ort_logits(path, rows, tokenizer):
    from export.parity import onnx_logits

    return onnx_logits(path, rows, tokenizer)


def _openvino_logits(path, rows, tokenizer):
    from modelkit.batching import padded_batches
    from quantize.openvino import OVClassifier, openvino_logits

    batches = (b for _, b in padded_batches(rows, tokenizer.pad_token_id, 32))
    return openvino_logits(OVClassifier(path), batches)


def _inc_logits(path, rows, tokenizer):
    from quantize.inc import load_inc_model
    from quantize.inc_autotune import model_logits, torch_batches

    return model_logits(load_inc_model(path), torch_batches(rows, tokenizer.pad_token_id, 64))


BACKENDS: dict[str, Backend] = {
    "torch": Backend(
        "pipelines.bench.loaders:load_torch", "torch", "PyTorch", "config.json"
    ),  # the fp32 teacher and student: their logits are the stage's reference, not scored here
    "onnxruntime": Backend(
        "pipelines.bench.loaders:load_ort",
        "onnxruntime",
        "ONNX Runtime",
        "model.onnx",
        logits=_ort_logits,
    ),
    "inc": Backend(
        "pipelines.bench.loaders:load_inc",
        "torch",
        "Neural Compressor",
        "inc_recipe.json",
        files=("inc_tensors.safetensors", "fp32/model.safetensors"),
        logits=_inc_logits,
    ),
    "openvino": Backend(
        "pipelines.bench.loaders:load_openvino",
        "openvino",
        "OpenVINO",
        "model.xml",
        files=("model.xml", "model.bin"),
        extra="openvino",
        logits=_openvino_logits,
    ),
}


def resolve(ref: str | Callable) -> Callable:
    """A callable, or the one a "module:function" string names (imported now)."""
    if callable(ref):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def get_backend(name: str) -> Backend:
    """BACKENDS[name], or an InputError listing the known backends."""
    return lookup(BACKENDS, name, "backend")


def eval_logits(name: str, path: Any, rows, tokenizer):
    """Logits of the artifact at `path` on tokenized `rows`, computed by backend `name`."""
    entry = get_backend(name)
    if entry.logits is None:
        raise ValueError(f"backend {name!r} computes no eval logits here")
    return entry.logits(path, rows, tokenizer)

"""Quantization-aware training: int8 fake-quant inserted into a PyTorch classifier, trained on, then
exported as a QDQ ONNX graph that ONNX Runtime runs with int8 kernels.

    qmodel = prepare_qat(model, calibration_batches)      # the same module, fake-quant added
    ...train qmodel with any loss (the distill stage uses its combined loss)...
    export_qat_onnx(qmodel, out_dir, example_batch)       # out_dir/model.onnx (QDQ)

Why NNCF (`nncf.quantize` on the torch model, then `nncf.strip` and the TorchScript exporter), not
torch.ao / torchao PT2E: measured on a BERT classifier (BENCHMARKS.md, issue #14 research), NNCF's
exported QDQ graph reproduces the fake-quant model in ONNX Runtime to 1e-4 and runs as fast as ORT
dynamic int8, where the PT2E route (`prepare_qat_pt2e` from torchao, `torch.onnx.export(dynamo=
True)`) differed from its fake-quant model by 3e-3 and ran 20% slower in ORT.

Settings that matter for BERT, each seen failing without it:
- `ModelType.TRANSFORMER`: without it NNCF quantizes the attention-mask arithmetic and the
  outputs turn NaN;
- SmoothQuant off: with NNCF's default for transformers, the pooler's input quantizer moved the
  logits by 0.5;
- the pooler and classifier stay fp32 (a small share of the work, a large share of the error);
- NNCF compiles a C++ extension for its fake-quant ops on first use (about a minute on 2 cores,
  cached under ~/.cache/torch_extensions); its default 60 s timeout is lifted here, and when the
  build fails NNCF falls back to reference torch ops by itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modelkit.errors import InputError
from modelkit.files import copy_config_and_tokenizer

INSTALL = "pip install 'distillery[openvino]' (it brings nncf)"
IGNORED = [".*pooler.*", ".*classifier.*"]
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def available() -> str | None:
    """None when nncf is installed, else what to install (found without importing it: NNCF loads
    torch, and `distillery validate` must not)."""
    from importlib.util import find_spec

    if find_spec("nncf") is None:
        return f"quantization-aware training needs NNCF: {INSTALL}"
    return None


def prepare_qat(model, calibration_batches: Iterable[Mapping[str, Any]], subset_size: int = 300):
    """`model` (a HF classifier, eager attention) with int8 fake-quant on its linear layers,
    ranges initialised on the calibration batches (dicts of tensors fed as model(**batch))."""
    missing = available()
    if missing:
        raise InputError(missing)
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "0")  # see the module docstring
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )

    items = [dict(batch) for batch in calibration_batches]
    if not items:
        raise InputError("quantization-aware training needs at least one calibration batch")
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")  # a traceable attention, as the export needs
    model.eval()
    return nncf.quantize(
        model,
        nncf.Dataset(items),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=min(subset_size, sum(len(b["input_ids"]) for b in items)),
        ignored_scope=nncf.IgnoredScope(patterns=IGNORED, validate=False),
        advanced_parameters=AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1)
        ),
    )


def logits_module(model, names: list[str]):
    """A module whose forward(input_ids, attention_mask[, token_type_ids]) returns the logits:
    what the exporter traces (positional inputs, one tensor out)."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args):
            return self.model(**dict(zip(names, args, strict=True))).logits

    return Logits()


def export_qat_onnx(
    qmodel, out_dir: str | Path, example: Mapping[str, Any], source_dir: str | Path | None = None
) -> Path:
    """Strip NNCF's hooks to torch fake-quant ops and export them as QuantizeLinear /
    DequantizeLinear (opset 17, TorchScript exporter: the dynamo one fails on NNCF's hooks),
    dynamic batch and sequence. Config and tokenizer files are copied from `source_dir`."""
    import nncf
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [n for n in INPUTS if n in example]
    example = {n: example[n] for n in names}
    stripped = nncf.strip(
        qmodel, do_copy=True, strip_format=nncf.StripFormat.NATIVE, example_input=example
    )
    stripped.eval()
    axes = {n: {0: "batch_size", 1: "sequence_length"} for n in names}
    with torch.no_grad():
        torch.onnx.export(
            logits_module(stripped, names),
            tuple(example[n] for n in names),
            str(out_dir / "model.onnx"),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch_size"}},
            opset_version=17,
            dynamo=False,
        )
    if source_dir is not None:
        copy_config_and_tokenizer(Path(source_dir), out_dir)
    return out_dir / "model.onnx"


def import_job(job) -> dict:
    """The quantize stage's `qat` candidate (`quantize.methods.METHODS`): the distill stage's
    fake-quant QDQ export, copied as it is; ONNX Runtime runs it."""
    import shutil

    from modelkit.onnx_graph import op_counts
    from quantize.ort_dynamic import quantized_op_count

    shutil.copytree(job.qat_dir, job.out, dirs_exist_ok=True)
    counts = op_counts(job.out / "model.onnx")
    return {
        "method": "qat",
        "library": job.qat.get("library"),
        "qat": job.qat,
        "op_counts": counts,
        "quantized_ops": quantized_op_count(counts),
        "size_bytes": (job.out / "model.onnx").stat().st_size,
    }

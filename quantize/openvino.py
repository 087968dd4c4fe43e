"""OpenVINO int8: NNCF post-training quantization of the ONNX export, run by OpenVINO's CPU plugin.

    result = quantize_openvino("run/export/student-onnx/model.onnx", "run/int8-ov", rows)
    model = OVClassifier("run/int8-ov", threads=2)          # model.logits(batch) -> [rows, labels]

Why this route (measured on the SST-2 3-layer student, b1/s128, 2 threads, interleaved rounds;
BENCHMARKS.md): NNCF's PTQ with `ModelType.TRANSFORMER` and the PERFORMANCE preset (symmetric
int8 activations) puts int8 FullyConnected kernels on every linear layer; compiled for the input's
exact shape, it ran 1.4-1.6× faster than optimum's own int8 path on the same model, where ORT
dynamic int8 variants reached at most 1.1×.

Two things OpenVINO does unless told otherwise, both pinned here:
- On CPUs with bf16 (AVX512-BF16, AMX) the plugin runs fp32 models in bf16 by default. Accuracy
  must be measured in the precision that runs, so every model here is compiled with
  `INFERENCE_PRECISION_HINT: f32` (int8 layers stay int8) and the hint is recorded.
- `ov.save_model` compresses fp32 weights to fp16 by default; the IR is saved uncompressed.

Static shapes: a model compiled for one [batch, seq] runs faster than the dynamic one (no shape
inference per call), so `OVClassifier` compiles per input shape and keeps the compiled models
(bounded); callers that see many lengths pad to a bucket (the bundle's predict.py pads to a
multiple of 16).

OpenVINO and NNCF are an extra (`pip install distillery[openvino]`); without them `available()`
says what to install and nothing here is imported.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelkit.batching import MODEL_INPUTS, concat_logits, pad_rows
from modelkit.cpu import cpu_flags
from modelkit.errors import InputError
from modelkit.files import copy_config_and_tokenizer

MODEL_XML = "model.xml"
PRECISION_HINT = "f32"  # what the accuracy gate measured, and what every session runs
PRESETS = ("performance", "mixed")  # NNCF: symmetric activations (fastest) or asymmetric
INSTALL = "pip install 'distillery[openvino]' (openvino and nncf)"
MAX_COMPILED = 64  # compiled shapes kept per model; older ones are dropped
# Sequences are right-padded (mask 0) to a multiple of this before compiling for a shape, so a
# stream of lengths compiles a handful of shapes, not one per length: measured on SST-2's eval
# split (length-bucketed batches of 32), compiling per exact length made OpenVINO 5× slower than
# padding everything to max_length. Masked keys contribute nothing, so the logits are unchanged.
SEQ_MULTIPLE = 16


def available() -> str | None:
    """None when openvino and nncf import, else what to install."""
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError as exc:
        return f"OpenVINO is not installed ({exc.name} missing): {INSTALL}"
    return None


def _require() -> None:
    missing = available()
    if missing:
        raise InputError(missing)


def overflow_fix_for(flags: set[str]) -> str:
    """NNCF's overflow fix for the CPU that will run the model: without VNNI (AVX2, or AVX-512
    without it) int8 dot products sum u8·s8 pairs in saturating int16, so every MatMul's weights
    take half the int8 range ("enable"); with VNNI nothing saturates and NNCF's own default
    applies ("default"). Measured here on an AVX2-only Zen 3: the tiny student's int8 logits were
    off by 19% of their range with the default, as the saturation predicts."""
    vnni = {"avx512_vnni", "avx_vnni", "amx_int8"}
    x86 = bool(flags & {"avx2", "avx512f", "sse4_2"})
    return "enable" if x86 and not flags & vnni else "default"


def quantize_openvino(
    onnx_path: str | Path,
    out_dir: str | Path,
    calibration_rows: Sequence[Mapping[str, Any]],
    *,
    preset: str = "performance",
    pad_token_id: int = 0,
) -> dict:
    """NNCF PTQ of an fp32 ONNX classifier into an OpenVINO IR (`out_dir/model.xml` + `.bin`).

    `calibration_rows`: tokenized rows (input_ids[, attention_mask, token_type_ids]), fed one at
    a time at their own length. Returns (and writes to `out_dir/openvino_quantization.json`)
    what was done: preset, rows, quantized layer counts, sizes.
    """
    _require()
    import nncf
    import openvino as ov

    if preset not in PRESETS:
        raise InputError(f"OpenVINO preset {preset!r}: allowed values {list(PRESETS)}")
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    core = ov.Core()
    model = core.read_model(str(onnx_path))
    names = [i.get_any_name() for i in model.inputs]
    unknown = sorted(set(names) - set(MODEL_INPUTS))
    if unknown:
        raise InputError(f"{onnx_path}: inputs {unknown} are not text-classifier inputs")
    items = [pad_rows([row], pad_token_id, names) for row in calibration_rows]
    if not items:
        raise InputError("OpenVINO calibration needs at least one row")
    overflow_fix = overflow_fix_for(cpu_flags())
    quantized = nncf.quantize(
        model,
        nncf.Dataset(items),
        model_type=nncf.ModelType.TRANSFORMER,
        preset=getattr(nncf.QuantizationPreset, preset.upper()),
        subset_size=len(items),
        advanced_parameters=nncf.AdvancedQuantizationParameters(
            overflow_fix=None if overflow_fix == "default" else nncf.OverflowFix(overflow_fix)
        ),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_dir / MODEL_XML), compress_to_fp16=False)
    copied = copy_config_and_tokenizer(onnx_path.parent, out_dir)
    fake_quantize = sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ops())
    result = {
        "method": "openvino",
        "source": str(onnx_path),
        "output": str(out_dir / MODEL_XML),
        "engine": "openvino",
        "openvino_version": ov.__version__,
        "nncf_version": nncf.__version__,
        "preset": preset,
        "overflow_fix": overflow_fix,
        "model_type": "transformer",
        "calibration_rows": len(items),
        "precision_hint": PRECISION_HINT,
        "quantized_ops": fake_quantize,
        "source_size_bytes": onnx_path.stat().st_size,
        "size_bytes": sum(p.stat().st_size for p in out_dir.glob("model.*")),
        "files_copied": copied,
        "load_with": (
            f"openvino.Core().compile_model('{out_dir / MODEL_XML}', 'CPU', "
            f"{{'INFERENCE_PRECISION_HINT': '{PRECISION_HINT}'}})"
        ),
    }
    (out_dir / "openvino_quantization.json").write_text(
        json.dumps(result, indent=2, sort_keys=True) + "\n"
    )
    return result


def qdq_to_openvino(onnx_path: str | Path, out_dir: str | Path) -> dict:
    """An int8 QDQ ONNX graph (quantization-aware training's export) as an OpenVINO IR.

    OpenVINO reads each QuantizeLinear/DequantizeLinear pair as a FakeQuantize and runs the
    matmuls in int8, with the scales the training learned; ONNX Runtime runs the same graph far
    slower here, because the exported weights stay fp32 behind their QuantizeLinear.
    """
    _require()
    import openvino as ov

    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    model = ov.Core().read_model(str(onnx_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(out_dir / MODEL_XML), compress_to_fp16=False)
    copied = copy_config_and_tokenizer(onnx_path.parent, out_dir)
    return {
        "method": "qat",
        "source": str(onnx_path),
        "engine": "openvino",
        "openvino_version": ov.__version__,
        "precision_hint": PRECISION_HINT,
        "quantized_ops": sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops()),
        "source_size_bytes": onnx_path.stat().st_size,
        "size_bytes": sum(p.stat().st_size for p in out_dir.glob("model.*")),
        "files_copied": copied,
    }


class OVClassifier:
    """An OpenVINO model (IR folder, .xml or .onnx) compiled for CPU per input shape.

    `logits(batch)` takes int64 arrays `[batch, seq]` keyed by input name and returns float32
    logits; the first call at a new shape compiles for it (cached, at most MAX_COMPILED shapes).
    `static_shapes=False` compiles once for dynamic shapes instead.
    """

    def __init__(self, path: str | Path, threads: int = 0, static_shapes: bool = True) -> None:
        _require()
        import openvino as ov

        path = Path(path)
        if path.is_dir():
            path = path / MODEL_XML if (path / MODEL_XML).is_file() else path / "model.onnx"
        if not path.is_file():
            raise FileNotFoundError(f"no OpenVINO IR or ONNX model at {path}")
        self.core = ov.Core()
        self.model = self.core.read_model(str(path))
        self.input_names = [i.get_any_name() for i in self.model.inputs]
        self.config = {"INFERENCE_PRECISION_HINT": PRECISION_HINT, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self.static_shapes = static_shapes
        self._compiled: OrderedDict[tuple, Any] = OrderedDict()

    def compiled(self, shape: tuple[int, int]):
        key = shape if self.static_shapes else ("dynamic",)
        if key not in self._compiled:
            model = self.model
            if self.static_shapes:
                model = self.model.clone()
                model.reshape({name: list(shape) for name in self.input_names})
            request = self.core.compile_model(model, "CPU", self.config).create_infer_request()
            self._compiled[key] = request
            while len(self._compiled) > MAX_COMPILED:
                self._compiled.popitem(last=False)
        self._compiled.move_to_end(key)
        return self._compiled[key]

    def precision(self) -> str:
        """The inference precision the plugin reports for a compiled model."""
        request = next(iter(self._compiled.values()), None) or self.compiled((1, 8))
        value = request.get_compiled_model().get_property("INFERENCE_PRECISION_HINT")
        return value.get_type_name() if hasattr(value, "get_type_name") else str(value)  # "f32"

    def logits(self, batch: Mapping[str, np.ndarray], output: str | None = None) -> np.ndarray:
        """The first output (`logits`), or the output named (a task head's `logits_<task>`);
        per-token logits are cut back to the batch's own length."""
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in self.input_names}
        width = feed[self.input_names[0]].shape[1]
        if self.static_shapes:
            feed = pad_to_multiple(feed, SEQ_MULTIPLE)
        shape = tuple(feed[self.input_names[0]].shape)
        result = self.compiled(shape).infer(feed)
        logits = np.asarray(result[output] if output else result[0], dtype=np.float32)
        return logits[:, :width] if logits.ndim == 3 else logits


def pad_to_multiple(feed: dict[str, np.ndarray], multiple: int) -> dict[str, np.ndarray]:
    """Right-pad every [batch, seq] input with zeros (mask 0: ignored) to a multiple of seq."""
    seq = next(iter(feed.values())).shape[1]
    extra = -seq % multiple
    if not extra:
        return feed
    return {k: np.pad(v, ((0, 0), (0, extra))) for k, v in feed.items()}


def openvino_logits(
    model: OVClassifier, batches: Iterable[Mapping[str, np.ndarray]], output: str | None = None
) -> np.ndarray:
    """Logits of consecutive padded batches, concatenated in order (per-token logits
    zero-padded to the longest batch, as `export.parity.onnx_logits` gives them)."""
    return concat_logits([model.logits(batch, output) for batch in batches])


def quantize_job(job) -> dict:
    """The quantize stage's `openvino` method (`quantize.methods.METHODS`): NNCF PTQ of the plain
    export, calibrated on `quantize.calibration.samples` training rows (their labels dropped)."""
    rows = job.calibration(job.settings.calibration.samples)
    return quantize_openvino(
        job.onnx,
        job.out,
        rows.select_columns([c for c in rows.column_names if c != "labels"]),
        preset=job.settings.openvino.preset,
        pad_token_id=job.pad_token_id,
    )


def qat_job(job) -> dict:
    """The quantize stage's `qat-openvino` candidate: the distill stage's fake-quant QDQ export,
    run by OpenVINO's int8 kernels."""
    return {"qat": job.qat, **qdq_to_openvino(job.qat_dir / "model.onnx", job.out)}

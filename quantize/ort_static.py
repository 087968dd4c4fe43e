"""ONNX Runtime static int8 quantization (QDQ) with a calibration set read in small batches.

    result = quantize_static("run/onnx/model.onnx", "run/int8/model_static.onnx", val_tokenized,
                             method="minmax", samples=256, batch_size=8, preset="auto")

Memory stays bounded by one batch: `CalibrationReader` pads `batch_size` rows at a time and ORT is
run in its strided mode (`CalibStridedMinMax=1`, despite the name it serves every method), which
calls the calibrator once per batch, so min/max ranges or histograms are merged batch by batch
instead of ORT holding every batch's activations until the end (what `collect_data` does with a
plain reader; that path also cannot stack batches padded to different lengths). We do not use
`CalibMaxIntermediateOutputs`: in ORT 1.32 MinMaxCalibrater.collect_data drops the collected
outputs at that limit without merging them into the range first.

Static QDQ needs the unfused export (`main_export`'s model.onnx). On an ORTOptimizer-fused graph
the calibrator cannot type the outputs of com.microsoft ops, skips them, and quantization then
fails with "Unable to get valid quantization scale for input ..."; ONNX Runtime fuses the QDQ
MatMuls itself when it loads the quantized model, so nothing is lost by quantizing unfused.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import psutil
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat
from onnxruntime.quantization import quantize_static as _ort_quantize_static

from modelkit.batching import pad_rows
from modelkit.errors import InputError
from modelkit.files import copy_config_and_tokenizer
from modelkit.onnx_graph import graph_inputs, op_counts
from quantize.ort_dynamic import (
    ORT_QUANT_TYPES,
    as_preset,
    check_float32,
    check_nodes_exist,
    check_paths,
    check_quantized,
    fused_ops,
    method_record,
    output_record,
    write_result,
)
from quantize.presets import CALIBRATION_METHODS, QuantPreset

# name → onnxruntime.quantization.CalibrationMethod member; the names live in quantize.presets
# (no onnxruntime import) so recipes are validated against this registry without loading ORT.

# Linear layers only. ORT's QDQ default (every op in its QDQRegistry) would also quantize Add, Mul,
# Softmax and LayerNorm: that calibrates BERT's additive attention mask (values down to
# float32.min), whose histogram ORT cannot bin ("Too many bins for data range") and whose
# int8 range would swamp the tensors around it.
DEFAULT_STATIC_OPS = ("MatMul", "Gemm")


def _rss_bytes() -> int:
    """Resident set size of this process now."""
    return psutil.Process().memory_info().rss


def _max_rss_bytes() -> int:
    """High-water RSS of this process since it started (ru_maxrss is KiB on Linux, bytes on macOS)."""
    try:
        import resource  # POSIX only
    except ImportError:
        return _rss_bytes()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def check_rows(rows: Any, samples: int) -> None:
    """Rows must be a Dataset or a sequence of dicts with at least `samples` entries."""
    if isinstance(rows, Mapping):
        if type(rows).__name__.endswith("DatasetDict"):
            raise TypeError(
                "calibration_rows: expected a Dataset or a list of dicts, but got a DatasetDict "
                f"with the splits {sorted(rows)}. Did you mean to select a split, e.g. "
                "rows['validation']?"
            )
        raise TypeError(
            "calibration_rows: expected a list of row dicts, got one dict; wrap it in a list"
        )
    if not hasattr(rows, "__len__") or not hasattr(rows, "__getitem__"):
        raise TypeError(
            "calibration_rows: expected a tokenized datasets.Dataset or a list of dicts with "
            f"input_ids (and attention_mask/token_type_ids), got {type(rows).__name__}"
        )
    if len(rows) < samples:
        raise InputError(
            f"calibration needs samples={samples} rows but calibration_rows has {len(rows)}; "
            f"lower samples to at most {len(rows)} or pass more rows"
        )


class CalibrationReader(CalibrationDataReader):
    """Feeds ORT the first `samples` rows as padded batches of at most `batch_size` rows.

    Batches are built on demand from `rows[i]`, so only one batch exists at a time. `__len__` and
    `set_range` (in batches) are what ORT's strided calibration calls. Counts what it read.
    """

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        input_names: Sequence[str],
        *,
        samples: int,
        batch_size: int,
        pad_token_id: int = 0,
    ) -> None:
        if samples < 1 or batch_size < 1:
            raise ValueError(f"samples and batch_size must be >= 1, got {samples}, {batch_size}")
        if "input_ids" not in input_names:
            raise ValueError(f"the model has no input_ids input (inputs: {list(input_names)})")
        check_rows(rows, samples)
        self.rows = rows
        self.input_names = list(input_names)
        self.samples = samples
        self.batch_size = batch_size
        self.pad_token_id = pad_token_id
        self.rows_read = 0
        self.batch_rows: list[int] = []  # rows in each batch fed, in order
        self.peak_rss = _rss_bytes()
        self.set_range(0, len(self))

    def __len__(self) -> int:
        """Number of batches."""
        return -(-self.samples // self.batch_size)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Restrict the next `get_next` calls to batches [start_index, end_index)."""
        self._batches = iter(range(start_index, min(end_index, len(self))))

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next padded batch as int64 arrays keyed by model input name, or None when done."""
        self.peak_rss = max(self.peak_rss, _rss_bytes())  # after ORT ran the previous batch
        index = next(self._batches, None)
        if index is None:
            return None
        start = index * self.batch_size
        stop = min(start + self.batch_size, self.samples)
        batch = self._pad([self.rows[i] for i in range(start, stop)])
        self.rows_read += stop - start
        self.batch_rows.append(stop - start)
        return batch

    def _pad(self, rows: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Right-pad every input to the longest row; missing masks/types default to 1/0."""
        return pad_rows(rows, self.pad_token_id, self.input_names)


def quantize_static(
    onnx_path: str | Path,
    out_path: str | Path,
    calibration_rows: Sequence[Mapping[str, Any]],
    *,
    method: str = "minmax",
    samples: int = 256,
    batch_size: int = 8,
    preset: QuantPreset | str = "auto",
    per_channel: bool | None = None,
    operators_to_quantize: Sequence[str] = DEFAULT_STATIC_OPS,
    nodes_to_exclude: Sequence[str] = (),
    pad_token_id: int = 0,
) -> dict:
    """Static int8 QDQ quantization calibrated on exactly `samples` rows; returns what was done.

    `calibration_rows` is a tokenized `datasets.Dataset` or a list of dicts with `input_ids` (and
    `attention_mask`, `token_type_ids`). The result (also written to `<out stem>.json`) records
    rows read, batch sizes, peak RSS during calibration, op counts and sizes.

    Why one function: it reads top to bottom in the order things happen (checks, the calibration reader,
    ORT's call, the record): split, the halves would pass a dozen locals between them.
    """
    if method not in CALIBRATION_METHODS:
        raise InputError(
            f"unknown calibration method {method!r}; choose one of {sorted(CALIBRATION_METHODS)}"
        )
    onnx_path, out_path = check_paths(onnx_path, out_path)
    preset, reason = as_preset(preset)
    per_channel = preset.per_channel if per_channel is None else per_channel
    model = onnx.load(str(onnx_path))
    check_float32(model, onnx_path)
    fused = fused_ops(model)
    if fused:
        raise InputError(
            f"static quantization needs the unfused export, but {onnx_path} has fused ops {fused} "
            "whose outputs ORT's calibrator cannot type. Pass the plain main_export model.onnx; "
            "ONNX Runtime fuses the quantized MatMuls itself when it loads the model."
        )
    nodes_to_exclude = check_nodes_exist(model, nodes_to_exclude, onnx_path)
    reader = CalibrationReader(
        calibration_rows,
        graph_inputs(model),
        samples=samples,
        batch_size=batch_size,
        pad_token_id=pad_token_id,
    )
    rss_before = _rss_bytes()
    symmetric_activations = preset.activation_type == "int8"
    extra_options = {
        "CalibStridedMinMax": 1,  # one batch per calibrator call: memory bounded (module doc)
        "CalibTensorRangeSymmetric": symmetric_activations,  # asymmetric ranges for uint8
        "ActivationSymmetric": symmetric_activations,
        "WeightSymmetric": True,  # as optimum's presets (use_symmetric_weights=True)
    }
    _ort_quantize_static(
        onnx_path,
        out_path,
        reader,
        quant_format=QuantFormat.QDQ,  # ORT's recommended CPU format since 1.11
        op_types_to_quantize=list(operators_to_quantize),
        per_channel=per_channel,
        reduce_range=preset.reduce_range,
        activation_type=ORT_QUANT_TYPES[preset.activation_type],
        weight_type=ORT_QUANT_TYPES[preset.weight_type],
        nodes_to_exclude=nodes_to_exclude,
        calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHODS[method]),
        extra_options=extra_options,
    )
    peak_rss = max(reader.peak_rss, _rss_bytes())

    counts = op_counts(out_path)
    check_quantized(
        counts,
        onnx_path,
        f"operators_to_quantize={list(operators_to_quantize)} and nodes_to_exclude",
    )
    copied = copy_config_and_tokenizer(onnx_path.parent, out_path.parent)
    mib = 1024 * 1024
    result = {
        **method_record("static", onnx_path, out_path, preset, reason, per_channel),
        "activation_type": preset.activation_type,
        "format": "QDQ",
        "operators_to_quantize": list(operators_to_quantize),
        "nodes_to_exclude": nodes_to_exclude,
        "extra_options": extra_options,
        "calibration": {
            "method": method,
            "samples": samples,
            "batch_size": batch_size,
            "rows_read": reader.rows_read,
            "batches": len(reader.batch_rows),
            "max_batch_rows": max(reader.batch_rows, default=0),
            "rss_before_mib": round(rss_before / mib, 1),
            "peak_rss_mib": round(peak_rss / mib, 1),  # sampled between batches
            "process_max_rss_mib": round(_max_rss_bytes() / mib, 1),  # whole process lifetime
        },
        **output_record(onnx_path, out_path, op_counts(model), counts, copied),
    }
    write_result(out_path, result)
    return result


def quantize_job(job) -> dict:
    """The quantize stage's `static` method (`quantize.methods.METHODS`): the plain export,
    calibrated on `quantize.calibration.samples` training rows."""
    s = job.settings
    rows = job.calibration(s.calibration.samples)
    return quantize_static(
        job.onnx,
        job.out / "model.onnx",
        rows,
        method=s.calibration.method,
        samples=len(rows),
        batch_size=s.calibration.batch_size,
        preset=job.preset,
        per_channel=s.per_channel,
        nodes_to_exclude=s.nodes_to_exclude,
        pad_token_id=job.pad_token_id,
    )

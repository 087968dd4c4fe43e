"""ONNX Runtime dynamic int8 quantization (weights int8 ahead of time, activations at run time).

    result = quantize_dynamic("run/onnx/model.onnx", "run/int8/model_quantized.onnx", "auto")
    ORTModelForSequenceClassification.from_pretrained("run/int8", file_name="model_quantized.onnx")

Works on the plain `optimum.exporters.onnx.main_export` graph and on the graph optimum's
`ORTOptimizer` fused at O1–O3. On a fused graph ONNX Runtime's quantizer fails with
"Unable to find data type for weight_name='…/MatMul_output_0'": ONNX shape inference does not
know the com.microsoft ops (Attention, SkipLayerNormalization, BiasGelu) so the MatMuls after
them have no output type. We pass `extra_options={"DefaultTensorType": FLOAT}`, the fix the error
message itself names, after checking the graph really is float32. We chose this over "quantize the
unfused graph, then fuse": ORT's transformer optimizer does not fuse attention across
MatMulInteger nodes, so that order loses the fused Attention; quantizing the fused graph turns
Attention into QAttention (int8 attention kernel), which is what ORT's BERT guide recommends.

Helpers both ONNX Runtime methods use (checks, the result record, presets by name) live here
too; `ort_static` imports them. Op counts and model files come from `modelkit`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType
from onnxruntime.quantization import quantize_dynamic as _ort_quantize_dynamic

from modelkit.errors import InputError
from modelkit.files import copy_config_and_tokenizer
from modelkit.onnx_graph import op_counts
from modelkit.task_types import is_token_head
from quantize.presets import QuantPreset, resolve_preset

# Op types that carry int8 work in an ORT graph (QOperator and QDQ forms, fused or not).
QUANTIZED_OPS = frozenset(
    {
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "QAttention",
        "QEmbedLayerNormalization",
        "QGemm",
        "QLinearMatMul",
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLSTM",
    }
)

ORT_QUANT_TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}

FUSED_DOMAIN = "com.microsoft"  # ORT contrib ops: what optimum's ORTOptimizer fuses into


def as_preset(preset: QuantPreset | str) -> tuple[QuantPreset, str]:
    """A preset object or name (`"auto"` picks from this CPU) → (preset, why it was chosen)."""
    if isinstance(preset, QuantPreset):
        return preset, f"preset {preset.name!r} passed in"
    return resolve_preset(preset)


def quantized_op_count(counts: dict[str, int]) -> int:
    """How many nodes do int8 work (see QUANTIZED_OPS)."""
    return sum(n for op, n in counts.items() if op in QUANTIZED_OPS)


def check_quantized(counts: dict[str, int], onnx_path: Path, settings: str) -> None:
    """Refuse a result with no int8 node: `settings` names what decided which nodes (the fix)."""
    if quantized_op_count(counts) == 0:
        raise InputError(
            f"nothing in {onnx_path} was quantized (ops after: {counts}); check {settings}"
        )


def fused_ops(model: onnx.ModelProto) -> list[str]:
    """Sorted com.microsoft op types in the graph (Attention, SkipLayerNormalization, ...)."""
    return sorted({node.op_type for node in model.graph.node if node.domain == FUSED_DOMAIN})


def check_float32(model: onnx.ModelProto, path: Path) -> None:
    """Refuse fp16 graphs: int8 quantization starts from fp32 weights (and DefaultTensorType=FLOAT)."""
    if any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer):
        raise InputError(
            f"{path} holds float16 weights (optimum O4 or an fp16 export); int8 quantization needs "
            "the float32 graph. Quantize the fp32 export (or its O1–O3 optimisation) instead."
        )


def check_nodes_exist(model: onnx.ModelProto, names: Iterable[str], path: Path) -> list[str]:
    """`names` as a list; a name not in the graph raises (ORT would ignore a typo silently)."""
    names = list(names)
    known = {node.name for node in model.graph.node}
    missing = sorted(set(names) - known)
    if missing:
        sample = sorted(known)[:8]
        raise InputError(
            f"nodes_to_exclude names {missing} are not nodes of {path}; "
            f"node names look like {sample} (list them with onnx.load(path).graph.node)"
        )
    return names


def write_result(out_path: Path, result: dict) -> Path:
    """Write `result` as `<out stem>.json` beside the .onnx: the artifact carries its config."""
    json_path = out_path.with_suffix(".json")
    json_path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return json_path


def output_record(
    onnx_path: Path,
    out_path: Path,
    counts_before: dict[str, int],
    counts: dict[str, int],
    copied: list[str],
) -> dict:
    """The part of a quantization result every ONNX method shares: ops, sizes, how to load it."""
    return {
        "op_counts_before": counts_before,
        "op_counts": counts,
        "quantized_ops": quantized_op_count(counts),
        "source_size_bytes": onnx_path.stat().st_size,
        "size_bytes": out_path.stat().st_size,
        "files_copied": copied,
        "load_with": (
            f"optimum.onnxruntime.{ort_class(out_path.parent, onnx_path.parent)}.from_pretrained("
            f"{str(out_path.parent)!r}, file_name={out_path.name!r})"
        ),
    }


def ort_class(*folders: Path) -> str:
    """optimum's ORTModel class for the config.json in the first folder holding one: the token
    head's for a …ForTokenClassification, else the sequence classifier's."""
    config = next((f / "config.json" for f in folders if (f / "config.json").is_file()), None)
    heads = (json.loads(config.read_text()).get("architectures") or []) if config else []
    token = is_token_head(heads)
    return "ORTModelForTokenClassification" if token else "ORTModelForSequenceClassification"


def method_record(
    method: str,
    onnx_path: Path,
    out_path: Path,
    preset: QuantPreset,
    reason: str,
    per_channel: bool,
) -> dict:
    """The head of an ORT method's result: what ran on which file with which preset."""
    return {
        "method": method,
        "source": str(onnx_path),
        "output": str(out_path),
        "preset": preset.to_dict(),
        "preset_reason": reason,
        "per_channel": per_channel,
        "reduce_range": preset.reduce_range,
        "weight_type": preset.weight_type,
    }


def check_paths(onnx_path: str | Path, out_path: str | Path) -> tuple[Path, Path]:
    """Validated (input, output) paths; the output folder is created."""
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(
            f"no ONNX model at {onnx_path}; run the export stage first or pass the .onnx file path"
        )
    if out_path.suffix != ".onnx":
        raise InputError(f"out_path must name an .onnx file, got {out_path}")
    if out_path.resolve() == onnx_path.resolve():
        raise ValueError(
            f"out_path {out_path} would overwrite the input model; choose another name"
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return onnx_path, out_path


def quantize_dynamic(
    onnx_path: str | Path,
    out_path: str | Path,
    preset: QuantPreset | str = "auto",
    *,
    per_channel: bool | None = None,
    nodes_to_exclude: Iterable[str] = (),
    operators_to_quantize: Iterable[str] | None = None,
) -> dict:
    """Dynamic int8 quantization of an fp32 ONNX classifier; returns what was done.

    `per_channel=None` takes the preset's choice; `operators_to_quantize=None` takes ORT's default
    (every op its IntegerOps registry knows: MatMul, Attention, Gather, ...), as optimum does.
    The result (also written to `<out stem>.json`) holds the preset, op counts before/after and
    file sizes. Config and tokenizer files are copied beside `out_path`.
    """
    onnx_path, out_path = check_paths(onnx_path, out_path)
    preset, reason = as_preset(preset)
    per_channel = preset.per_channel if per_channel is None else per_channel
    model = onnx.load(str(onnx_path))
    check_float32(model, onnx_path)
    nodes_to_exclude = check_nodes_exist(model, nodes_to_exclude, onnx_path)
    fused = fused_ops(model)
    counts_before = op_counts(model)
    ops = list(operators_to_quantize) if operators_to_quantize is not None else None

    # onnxruntime's quantize_dynamic rather than optimum's ORTQuantizer: ORTQuantizer.quantize
    # builds extra_options itself and cannot pass DefaultTensorType, which fused graphs need.
    extra_options = {
        # Fused com.microsoft ops have no ONNX type inference: fp32 is the only float type here.
        "DefaultTensorType": onnx.TensorProto.FLOAT,
        # optimum's presets quantize weights symmetrically (use_symmetric_weights=True).
        "WeightSymmetric": True,
        "ActivationSymmetric": False,  # DynamicQuantizeLinear is asymmetric uint8 by definition
    }
    _ort_quantize_dynamic(
        model,  # the ModelProto, so the graph is read once
        out_path,
        op_types_to_quantize=ops,
        per_channel=per_channel,
        reduce_range=preset.reduce_range,
        weight_type=ORT_QUANT_TYPES[preset.weight_type],
        nodes_to_exclude=nodes_to_exclude,
        extra_options=extra_options,
    )

    counts = op_counts(out_path)
    check_quantized(
        counts, onnx_path, f"operators_to_quantize={ops} and nodes_to_exclude={nodes_to_exclude}"
    )
    copied = copy_config_and_tokenizer(onnx_path.parent, out_path.parent)
    result = {
        **method_record("dynamic", onnx_path, out_path, preset, reason, per_channel),
        "activation_type": "uint8",  # DynamicQuantizeLinear's only output type
        "operators_to_quantize": ops,
        "nodes_to_exclude": nodes_to_exclude,
        "fused_input_ops": fused,
        "extra_options": {**extra_options, "DefaultTensorType": "FLOAT"},
        **output_record(onnx_path, out_path, counts_before, counts, copied),
    }
    write_result(out_path, result)
    return result


def quantize_job(job) -> dict:
    """The quantize stage's `dynamic` method (`quantize.methods.METHODS`): the plain export, or
    the ORT-fused one when `quantize.dynamic_graph` is fused and one was exported."""
    s = job.settings
    fused = s.dynamic_graph == "fused" and job.onnx_fused is not None
    return quantize_dynamic(
        job.onnx_fused if fused else job.onnx,
        job.out / "model.onnx",
        job.preset,
        per_channel=s.per_channel,
        nodes_to_exclude=s.nodes_to_exclude,
        operators_to_quantize=s.operators_to_quantize,
    )

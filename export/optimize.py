"""Graph optimisation of an exported classifier with optimum's `ORTOptimizer` (O1–O4).

The optimised model goes to its own folder (`model.onnx` + config + tokenizer + optimum's
`ort_config.json` naming the level), so unfused and fused sit side by side and both load with
`ORTModelForSequenceClassification.from_pretrained`.

Two things to know about O2+ on a BERT: the fused `Attention` reads the attention mask as per-row
lengths (`ReduceSum` of the mask), so it is exact for right padding only; and ONNX Runtime's
dynamic quantizer needs `DefaultTensorType` to type the MatMuls after the fused com.microsoft ops
(`quantize.ort_dynamic` passes it, and quantizes this fused graph so that Attention becomes
QAttention), while static QDQ calibration cannot type them at all and takes the plain export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelkit.errors import InputError
from modelkit.onnx_graph import op_counts

# optimum AutoOptimizationConfig levels; the value is why you would pick one.
LEVELS = {
    "O1": "basic ONNX Runtime graph optimisations (constant folding, redundant nodes); no fusion",
    "O2": "O1 + transformer fusions (Attention, SkipLayerNormalization, BiasGelu)",
    "O3": "O2 + tanh approximation of GELU (FastGelu)",
    "O4": "O3 + fp16 weights and activations; CUDA only",
}
# ONNX Runtime contrib ops that the transformer fusions create (com.microsoft domain).
FUSED_OP_TYPES = (
    "Attention",
    "MultiHeadAttention",
    "EmbedLayerNormalization",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
    "GemmFastGelu",
)


def optimize_onnx(
    onnx_dir: str | Path, out_dir: str | Path, level: str, *, device: str = "cpu"
) -> dict[str, Any]:
    """Optimise `onnx_dir/model.onnx` at `level` into `out_dir/model.onnx`.

    device "cuda" lets ORT apply GPU-only fusions and is required for O4 (fp16). Returns paths,
    node counts before/after, `fused_ops` ({op_type: count} for every FUSED_OP_TYPES entry, zeros
    included) and `op_counts` (every op_type of the optimised graph).
    """
    from optimum.onnxruntime import AutoOptimizationConfig, ORTOptimizer

    onnx_dir, out_dir = Path(onnx_dir), Path(out_dir)
    _check_level(level, device)
    source = onnx_dir / "model.onnx"
    if not source.is_file():
        raise FileNotFoundError(f"optimize: no model.onnx in {onnx_dir}; run the export first.")
    if out_dir.resolve() == onnx_dir.resolve():
        raise ValueError(
            f"optimize: out_dir is the export folder {onnx_dir}; write the optimised model to "
            "its own folder so the unfused export stays beside it."
        )

    optimizer = ORTOptimizer.from_pretrained(onnx_dir, file_names=[source.name])
    config = AutoOptimizationConfig.with_optimization_level(level, for_gpu=device == "cuda")
    # file_suffix "" keeps the standard name model.onnx, which ORTModel loads without a file_name.
    optimizer.optimize(optimization_config=config, save_dir=out_dir, file_suffix="")
    target = out_dir / source.name
    counts = op_counts(target)
    return {
        "onnx_path": str(target),
        "out_dir": str(out_dir),
        "source": str(source),
        "level": level,
        "device": device,
        "nodes_before": sum(op_counts(source).values()),
        "nodes_after": sum(counts.values()),
        "fused_ops": {op: counts.get(op, 0) for op in FUSED_OP_TYPES},
        "op_counts": counts,
        "size_bytes": target.stat().st_size,
    }


def _check_level(level: str, device: str) -> None:
    if level not in LEVELS:
        raise InputError(f"optimize: unknown level {level!r}; known: {sorted(LEVELS)}")
    if device not in ("cpu", "cuda"):
        raise InputError(f"optimize: unknown device {device!r}; known: ['cpu', 'cuda']")
    if level == "O4" and device != "cuda":
        raise InputError(
            "optimize: O4 converts the model to fp16, which ONNX Runtime runs fast only on CUDA; "
            "use O3 for CPU, or pass device='cuda' on a machine with onnxruntime-gpu."
        )
    if device == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError(
                f"optimize: device='cuda' but ONNX Runtime has no CUDAExecutionProvider "
                f"(available: {ort.get_available_providers()}); pip install onnxruntime-gpu "
                "(in place of onnxruntime), or optimise for device='cpu'."
            )

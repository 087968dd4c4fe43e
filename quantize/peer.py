"""The peer path: int8 exactly as a user would make it with optimum's own tools.

    optimum-cli export onnx --model M out/                       # main_export: the plain graph
    optimum-cli onnxruntime quantize --onnx_model out/ --avx512_vnni -o int8/

The second command (optimum-onnx `optimum/commands/onnxruntime/quantize.py`) runs, for every
`*.onnx` in the folder, `ORTQuantizer.from_pretrained(dir, file_name=...)` and
`AutoQuantizationConfig.<preset>(is_static=False, per_channel=<--per_channel, off by default>)`,
then `quantizer.quantize(save_dir=..., quantization_config=...)`. `quantize_like_optimum` makes
that same call on the same plain export, with the preset flag a user would pass on this CPU, so
the benchmark can put the project's int8 artifacts next to what `optimum-cli` gives at equal
settings. It is a baseline: nothing here is tuned.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelkit.files import copy_config_and_tokenizer
from modelkit.onnx_graph import op_counts
from quantize.ort_dynamic import output_record

# optimum's AutoQuantizationConfig has a factory per CPU family; our preset names map onto them.
OPTIMUM_PRESETS = {
    "avx512_vnni": "avx512_vnni",
    "avx512": "avx512",
    "avx2": "avx2",
    "arm64": "arm64",
    "tensorrt": "avx512_vnni",  # no GPU flag in optimum-cli's quantize; the CPU peer is VNNI
}


def quantize_like_optimum(
    onnx_path: str | Path, out_path: str | Path, preset: str, per_channel: bool = False
) -> dict:
    """`optimum-cli onnxruntime quantize --<preset>` on `onnx_path` (a plain optimum export);
    the result is written to `out_path` (a `model.onnx` beside its config and tokenizer)."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    flag = OPTIMUM_PRESETS[preset]
    config = getattr(AutoQuantizationConfig, flag)(is_static=False, per_channel=per_channel)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    quantizer = ORTQuantizer.from_pretrained(onnx_path.parent, file_name=onnx_path.name)
    quantizer.quantize(save_dir=out_path.parent, quantization_config=config, file_suffix="peer")
    written = out_path.parent / f"{onnx_path.stem}_peer.onnx"
    written.replace(out_path)  # the name every artifact here has
    copied = copy_config_and_tokenizer(onnx_path.parent, out_path.parent)
    result = {
        "method": "peer",
        "what": f"optimum-cli onnxruntime quantize --{flag}"
        + (" --per_channel" if per_channel else ""),
        "call": f"AutoQuantizationConfig.{flag}(is_static=False, per_channel={per_channel})",
        "source": str(onnx_path),
        "output": str(out_path),
        "per_channel": per_channel,
        "operators_to_quantize": list(config.operators_to_quantize),
        **output_record(onnx_path, out_path, op_counts(onnx_path), op_counts(out_path), copied),
    }
    out_path.with_suffix(".json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result

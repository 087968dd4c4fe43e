"""The OpenVINO deployment artifact of a search candidate (the `[openvino]` extra)."""

from __future__ import annotations

from pathlib import Path

from modelkit.errors import InputError


def quantize_for_openvino(recipe, onnx_path: Path, out_dir: Path, train_set, tokenizer) -> None:
    from quantize.openvino import available, quantize_openvino

    missing = available()
    if missing:
        raise InputError(f"search.backend openvino: {missing}")
    rows = train_set.shuffle(seed=recipe.seed).select(
        range(min(recipe.quantize.calibration.samples, len(train_set)))
    )
    quantize_openvino(
        onnx_path,
        out_dir,
        rows.select_columns([c for c in rows.column_names if c != "labels"]),
        preset=recipe.quantize.openvino.preset,
        pad_token_id=tokenizer.pad_token_id,
    )

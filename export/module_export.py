"""Export a classifier that optimum does not know (a token-vector student: static, CNN, BiLSTM)
to ONNX with `torch.onnx.export`.

    info = export_module(model, "out/student-onnx", opset=17)

The graph has the transformers' names: inputs `input_ids` and `attention_mask` (`[batch_size,
sequence_length]` int64), output `logits` (`[batch_size, num_labels]`), so parity, quantization,
the bench and the bundle's `predict.py` read it as they read an optimum export. The model's
`config.json` is saved beside it (labels for the bundle). optimum's `main_export` is not used
because it exports only the architectures it has an `OnnxConfig` for; TorchScript tracing (the
exporter's `dynamo=False` path) is used because it maps `nn.LSTM` to ONNX's LSTM op and keeps the
sequence axis dynamic, which the dynamo exporter does not yet do for every op these use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from export.onnx_export import RECORD_NAME, describe_onnx

DEFAULT_OPSET = 17
INPUTS = ("input_ids", "attention_mask")


def export_module(model, out_dir: str | Path, *, opset: int | None = None) -> dict[str, Any]:
    """`model` (called as `model(input_ids=..., attention_mask=...).logits`) to
    `out_dir/model.onnx` with dynamic batch and sequence axes, its config beside it. Returns the
    same record as `export_classifier` (also written to `out_dir/export_info.json`)."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()

    class Logits(torch.nn.Module):  # positional inputs → the logits tensor alone
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    ids = torch.tensor([[2, 5, 6, 7, 3], [2, 5, 3, 0, 0]], dtype=torch.long)
    ids = ids.clamp(max=model.config.vocab_size - 1)
    mask = (torch.arange(5) < torch.tensor([[5], [3]])).long()
    axes = {"batch_size": 0, "sequence_length": 1}
    torch.onnx.export(
        Logits(model).eval(),  # a fresh module trains by default, and export restores that mode
        (ids, mask),
        str(out_dir / "model.onnx"),
        input_names=list(INPUTS),
        output_names=["logits"],
        dynamic_axes={
            "input_ids": {v: k for k, v in axes.items()},
            "attention_mask": {v: k for k, v in axes.items()},
            "logits": {0: "batch_size"},
        },
        opset_version=opset or DEFAULT_OPSET,
        dynamo=False,
    )
    model.config.save_pretrained(out_dir)
    config = model.config
    info: dict[str, Any] = {
        "model_dir": None,
        "model_type": config.model_type,
        "task": "text-classification",
        "device": "cpu",
        "labels": [config.id2label[i] for i in sorted(config.id2label)],
        **describe_onnx(out_dir / "model.onnx"),
        "features": None,
    }
    (out_dir / RECORD_NAME).write_text(json.dumps(info, indent=2) + "\n")
    return info

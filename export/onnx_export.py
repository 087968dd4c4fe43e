"""Export a fine-tuned `…ForSequenceClassification` folder to ONNX with optimum-onnx (a
`…ForTokenClassification` one as optimum's token-classification task: logits
`[batch_size, sequence_length, num_labels]`).

The out folder holds `model.onnx` (inputs `input_ids`, `attention_mask`, `token_type_ids` where the
architecture has them, each `[batch_size, sequence_length]` int64; output `logits`
`[batch_size, num_labels]`), the tokenizer and `config.json`, so it loads with
`ORTModelForSequenceClassification.from_pretrained(out_dir)` and runs inside
`transformers.pipeline("text-classification", ...)`. With `feature_extraction=True` the encoder
alone (output `last_hidden_state` `[batch_size, sequence_length, hidden]`) goes to
`out_dir/"features"`.

optimum's own validation is switched off (`do_validation=False`): it downgrades a tolerance miss
to a logged warning, so it cannot gate anything, and it costs a second ORT + PyTorch run.
`export.parity` is the gate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelkit.errors import InputError
from modelkit.families import family_of
from modelkit.task_types import task_type_of

DEVICES = ("cpu", "cuda")
FEATURES_SUBDIR = "features"  # encoder export, beside the classifier
RECORD_NAME = "export_info.json"  # what export_classifier returned, beside model.onnx


def export_classifier(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    opset: int | None = None,
    device: str = "cpu",
    feature_extraction: bool = False,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Export `model_dir` (save_pretrained layout) to `out_dir/model.onnx` with dynamic axes.

    trust_remote_code: the folder holds a model with its own code, and its owner trusts it.

    opset None takes optimum's default for the architecture (18 for BERT in optimum-onnx 0.1).
    Returns paths, the opset read back from the file, input/output names, size in bytes, and the
    same for the encoder under "features" (None unless `feature_extraction`). The dict is also
    written to `out_dir/export_info.json`.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    config = _load_config(model_dir, trust_remote_code)
    _check_architecture(config, model_dir)
    _check_device(device)
    out_dir.mkdir(parents=True, exist_ok=True)

    task = task_type_of(config).export_task  # text- or token-classification
    _main_export(model_dir, out_dir, task, opset, device, trust_remote_code)
    info: dict[str, Any] = {
        "model_dir": str(model_dir),
        "model_type": config.model_type,
        "task": task,
        "device": device,
        "labels": [config.id2label[i] for i in sorted(config.id2label)],
        **describe_onnx(out_dir / "model.onnx"),
        "features": None,
    }
    if feature_extraction:
        features_dir = out_dir / FEATURES_SUBDIR
        _main_export(
            model_dir, features_dir, "feature-extraction", opset, device, trust_remote_code
        )
        info["features"] = {
            "task": "feature-extraction",
            **describe_onnx(features_dir / "model.onnx"),
        }
    (out_dir / RECORD_NAME).write_text(json.dumps(info, indent=2) + "\n")
    return info


def describe_onnx(onnx_path: str | Path) -> dict[str, Any]:
    """Path, default-domain opset, input/output names and on-disk size (with external data)."""
    import onnx

    onnx_path = Path(onnx_path)
    proto = onnx.load(str(onnx_path), load_external_data=False)  # the graph only: cheap
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    # Weights over 2 GB go to `model.onnx_data` beside the graph; count them in the size.
    size = sum(p.stat().st_size for p in onnx_path.parent.glob(onnx_path.name + "*"))
    return {
        "onnx_path": str(onnx_path),
        "out_dir": str(onnx_path.parent),
        "opset": int(opset),
        "input_names": [i.name for i in proto.graph.input],
        "output_names": [o.name for o in proto.graph.output],
        "size_bytes": int(size),
    }


def _main_export(
    model_dir: Path, out_dir: Path, task: str, opset: int | None, device: str, trust: bool
) -> None:
    from optimum.exporters.onnx import main_export

    main_export(
        str(model_dir),
        out_dir,
        task=task,  # explicit: "auto" would try the Hub to infer it
        opset=opset,
        device=device,
        # explicit: a folder with modules.json (sentence-transformers layout) would otherwise be
        # exported as a sentence-transformers model, with different outputs
        library_name="transformers",
        framework="pt",
        local_files_only=True,  # a local folder; never reach for the Hub
        trust_remote_code=trust,
        do_validation=False,  # see the module docstring; export.parity does the checking
    )


def _load_config(model_dir: Path, trust: bool = False):
    from transformers import AutoConfig

    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"export: {model_dir} has no config.json; pass a folder written by "
            "model.save_pretrained(...) and tokenizer.save_pretrained(...)."
        )
    return AutoConfig.from_pretrained(model_dir, local_files_only=True, trust_remote_code=trust)


def _check_architecture(config, model_dir: Path) -> None:
    architectures = getattr(config, "architectures", None) or []
    arch = ", ".join(architectures) or "(none listed in config.json)"
    family_of(config, f"export of {model_dir}")
    heads = ("ForSequenceClassification", "ForTokenClassification")
    if architectures and not any(a.endswith(heads) for a in architectures):
        # optimum would load it with a fresh, random classification head and export that.
        raise InputError(
            f"export: {model_dir} holds {arch}, not a …ForSequenceClassification or "
            "…ForTokenClassification model; export the fine-tuned classifier (teacher or student "
            "folder), not the bare encoder."
        )


def _check_device(device: str) -> None:
    if device not in DEVICES:
        raise InputError(f"export: unknown device {device!r}; known: {sorted(DEVICES)}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(
                "export: device='cuda' but torch.cuda.is_available() is False. Export with "
                "device='cpu' (the ONNX file runs on any execution provider), or install a CUDA "
                "build of torch."
            )

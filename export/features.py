"""[CLS] sentence vectors from the encoder, in PyTorch or from the exported `features/` ONNX graph.

Both return float32 `[len(texts), hidden_size]`: `last_hidden_state[:, 0]`, unnormalised, from
the same tokenization (right padding, truncation to `max_length`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def cls_vector_torch(
    model_dir: str | Path, texts: list[str], max_length: int, batch_size: int = 32
) -> np.ndarray:
    """[CLS] vectors `[len(texts), hidden]` from the encoder of a save_pretrained folder.

    A `…ForSequenceClassification` folder loads into `AutoModel` as its encoder (the classifier
    head is dropped, with transformers' "weights not used" notice).
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    chunks = []
    with torch.inference_mode():
        for batch in _tokenized(tokenizer, texts, max_length, batch_size, "pt"):
            chunks.append(model(**batch).last_hidden_state[:, 0].float().numpy())
    return _stack(chunks, model.config.hidden_size)


def cls_vector_onnx(
    features_dir: str | Path, texts: list[str], max_length: int, batch_size: int = 32
) -> np.ndarray:
    """[CLS] vectors `[len(texts), hidden]` from `features_dir/model.onnx` (ONNX Runtime, CPU).

    `features_dir` is the `features/` folder `export_classifier(..., feature_extraction=True)`
    writes: the encoder graph with output `last_hidden_state`, and the tokenizer beside it.
    """
    import onnxruntime as ort
    from transformers import AutoTokenizer

    features_dir = Path(features_dir)
    tokenizer = AutoTokenizer.from_pretrained(features_dir)
    session = ort.InferenceSession(
        str(features_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    declared = [i.name for i in session.get_inputs()]
    chunks = []
    for batch in _tokenized(tokenizer, texts, max_length, batch_size, "np"):
        feed = {name: batch[name].astype(np.int64) for name in declared}
        hidden = session.run(["last_hidden_state"], feed)[0]  # [batch, seq, hidden]
        chunks.append(hidden[:, 0])
    return _stack(chunks, session.get_outputs()[0].shape[-1])


def _tokenized(tokenizer, texts: list[str], max_length: int, batch_size: int, tensors: str):
    if isinstance(texts, str):
        raise TypeError("texts: expected a list of strings, got one string; wrap it in a list.")
    tokenizer.padding_side = "right"  # the same layout as the export's parity batches
    for start in range(0, len(texts), batch_size):
        yield tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_token_type_ids=True,
            return_tensors=tensors,
        )


def _stack(chunks: list[np.ndarray], hidden: int) -> np.ndarray:
    if not chunks:
        return np.zeros((0, hidden if isinstance(hidden, int) else 0), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32)

"""Quantization-aware distillation (NNCF, quantize/qat.py) on a tiny BERT: its QDQ export matches the
fake-quant model. The stage with QAT, two steps and relations: tests/stages/test_distill_methods.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import tiny_bert

WORDS = [
    "good",
    "bad",
    "great",
    "awful",
    "fine",
    "dull",
    "fun",
    "boring",
    "nice",
    "poor",
    "film",
    "plot",
    "cast",
    "the",
    "a",
]


def _batches(tokenizer, n=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        texts = [" ".join(rng.choice(WORDS, size=rng.integers(3, 12))) for _ in range(8)]
        out.append(dict(tokenizer(texts, padding=True, return_tensors="pt")))
    return out


@pytest.mark.slow  # over ~10 s on 2 cores: make test-fast leaves it out
def test_qat_export_is_a_qdq_graph_that_matches_the_fake_quant_model(tmp_path):
    pytest.importorskip("nncf", reason="QAT needs nncf: pip install 'distillery[openvino]'")
    import onnxruntime as ort

    from modelkit.onnx_graph import op_counts
    from quantize.qat import export_qat_onnx, prepare_qat

    model, tokenizer = tiny_bert(tmp_path / "src", WORDS, hidden_size=64, num_attention_heads=4)
    model.save_pretrained(tmp_path / "src", safe_serialization=True)
    batches = _batches(tokenizer)
    qmodel = prepare_qat(model, batches[:3])
    # a few training steps move the weights and the learned ranges, as QAT does
    qmodel.train()
    optimizer = torch.optim.AdamW(qmodel.parameters(), lr=1e-3)
    for batch in batches:
        loss = qmodel(**batch, labels=torch.zeros(len(batch["input_ids"]), dtype=torch.long)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    qmodel.eval()
    with torch.no_grad():
        fake_quant = torch.cat([qmodel(**b).logits for b in batches[3:]]).numpy()
        fp32 = torch.cat([model(**b).logits for b in batches[3:]]).numpy()

    path = export_qat_onnx(qmodel, tmp_path / "qat", batches[0], source_dir=tmp_path / "src")
    counts = op_counts(path)
    assert counts.get("QuantizeLinear", 0) >= 12 and counts.get("DequantizeLinear", 0) >= 12
    assert (tmp_path / "qat" / "config.json").is_file()  # deployable beside its tokenizer files
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    onnx = np.concatenate(
        [
            session.run(None, {k: v.numpy() for k, v in b.items() if k in names})[0]
            for b in batches[3:]
        ]
    )
    # ORT runs what the fake-quant model computed (up to rounding at quantization boundaries) ...
    np.testing.assert_allclose(onnx, fake_quant, atol=2e-2, rtol=0)
    assert np.abs(onnx - fake_quant).mean() < 2e-3
    # ... and that is not the fp32 model: the graph is quantized, not a float copy
    assert np.abs(fake_quant - fp32).max() > 1e-3

"""quantize/: presets, ORT dynamic and static int8, Neural Compressor autotune, the accuracy gate.

One tiny BERT (2 layers, hidden 32) is exported once per module, plain and O2-fused.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import pytest
import torch

from quantize.gate import GateResult, QuantizationGateError, gate
from quantize.ort_dynamic import op_counts, quantize_dynamic
from quantize.ort_static import CalibrationReader, quantize_static
from quantize.presets import (
    PRESETS,
    QuantPreset,
    detect_cpu,
    get_preset,
    resolve_preset,
    select_preset,
)
from tests.conftest import tiny_bert

WORDS = ["good", "bad", "movie", "film", "great", "awful", "the", "a", "plot", "acting"]
SHAPES = [(1, 4), (5, 30)]  # (batch, seq): dynamic axes both ways


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny BERT classifier saved with its tokenizer, its ONNX export and the O2-fused graph."""
    from optimum.exporters.onnx import main_export
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    root = tmp_path_factory.mktemp("tiny")
    model_dir, onnx_dir, o2_dir = root / "model", root / "onnx", root / "o2"
    model, tokenizer = tiny_bert(model_dir, WORDS)
    model.save_pretrained(model_dir)
    main_export(str(model_dir), str(onnx_dir), task="text-classification")
    optimizer = ORTOptimizer.from_pretrained(onnx_dir)
    optimizer.optimize(AutoOptimizationConfig.O2(), save_dir=o2_dir)
    return {
        "model_dir": model_dir,
        "onnx": onnx_dir / "model.onnx",
        "o2": o2_dir / "model_optimized.onnx",
        "tokenizer": tokenizer,
        "root": root,
    }


def random_inputs(batch: int, seq: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids over the word part of the vocabulary, full attention, one segment."""
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(5, 5 + len(WORDS), (batch, seq)).astype(np.int64),
        "attention_mask": np.ones((batch, seq), np.int64),
        "token_type_ids": np.zeros((batch, seq), np.int64),
    }


def logits(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


def assert_loads_and_runs(out_path: Path, reference: Path) -> None:
    """Loads with optimum from its folder and matches the fp32 graph closely at both shapes."""
    from optimum.onnxruntime import ORTModelForSequenceClassification

    model = ORTModelForSequenceClassification.from_pretrained(
        out_path.parent, file_name=out_path.name
    )
    for batch, seq in SHAPES:
        inputs = random_inputs(batch, seq, seed=batch * seq)
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits
        assert tuple(out.shape) == (batch, 2)
        np.testing.assert_allclose(out.numpy(), logits(reference, inputs), atol=0.05)


def tokenized_rows(tokenizer, n: int) -> list[dict]:
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 12)))) for _ in range(n)]
    enc = tokenizer(texts)
    return [{k: enc[k][i] for k in enc} | {"label": i % 2} for i in range(n)]


# ---------------------------------------------------------------- presets


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_round_trips(name):
    preset = get_preset(name)
    assert preset.name == name
    assert preset.why == PRESETS[name].__doc__ and preset.why.strip()
    assert QuantPreset.from_dict(json.loads(json.dumps(preset.to_dict()))) == preset


@pytest.mark.parametrize(
    ("flags", "arch", "name", "reduce_range", "weight_type"),
    [
        ({"avx2", "avx512f", "avx512bw", "avx512_vnni"}, "x86_64", "avx512_vnni", False, "int8"),
        ({"avx2", "avx_vnni"}, "x86_64", "avx512_vnni", False, "int8"),
        ({"avx2", "avx512f", "avx512bw"}, "x86_64", "avx512", True, "int8"),
        ({"sse4_2", "avx2"}, "x86_64", "avx2", True, "int8"),
        ({"asimd", "asimddp"}, "aarch64", "arm64", False, "int8"),
        (set(), "arm64", "arm64", False, "int8"),
    ],
)
def test_select_preset_from_cpu_flags(flags, arch, name, reduce_range, weight_type):
    preset, reason = select_preset(flags, arch)
    assert (preset.name, preset.reduce_range, preset.weight_type) == (
        name,
        reduce_range,
        weight_type,
    )
    assert preset.activation_type == "uint8" and preset.per_channel
    assert reason


def test_select_preset_falls_back_clearly():
    preset, reason = select_preset({"sse2"}, "x86_64")
    assert preset.name == "avx2" and preset.reduce_range
    assert "falling back" in reason and "reduce_range=True" in reason


def test_unknown_preset_lists_names():
    names = r"\['arm64', 'avx2', 'avx512', 'avx512_vnni', 'tensorrt'\]"
    with pytest.raises(ValueError, match=r"'avx9'.*" + names):
        get_preset("avx9")


def test_preset_validation_names_the_problem():
    with pytest.raises(ValueError, match=r"weight_type must be one of \['int8', 'uint8'\]"):
        QuantPreset("x", False, "int4", "uint8", True, "why")
    with pytest.raises(ValueError, match="int8 activations with uint8 weights"):
        QuantPreset("x", False, "uint8", "int8", True, "why")
    with pytest.raises(ValueError, match="unknown QuantPreset keys"):
        QuantPreset.from_dict({**get_preset("avx2").to_dict(), "reduce_rnage": True})


def test_auto_preset_follows_this_cpus_flags(monkeypatch):
    from modelkit import cpu
    from quantize import presets

    monkeypatch.setattr(cpu, "cpu_info", lambda: {"flags": ["fpu", "AVX2", "avx512f"]})
    assert detect_cpu()[0] == {"fpu", "avx2", "avx512f"}  # py-cpuinfo's list, lower-cased
    monkeypatch.setattr(presets.platform, "machine", lambda: "x86_64")
    assert resolve_preset("auto")[0].name == "avx512"  # AVX-512 without VNNI: 7-bit weights
    monkeypatch.setattr(cpu, "cpu_info", lambda: {"flags": ["avx2", "avx512_vnni"]})
    assert resolve_preset("auto")[0].name == "avx512_vnni"
    monkeypatch.setattr(cpu, "cpu_info", lambda: {})  # flags unreadable: the safe settings
    assert resolve_preset("auto")[0].name == "avx2"


# ---------------------------------------------------------------- ORT dynamic


def test_dynamic_int8_unfused(tiny, tmp_path):
    out = tmp_path / "dyn" / "model_quantized.onnx"
    result = quantize_dynamic(tiny["onnx"], out, "avx512_vnni")
    counts = op_counts(out)
    assert counts.get("MatMulInteger", 0) > 0 and counts.get("DynamicQuantizeLinear", 0) > 0
    assert result["op_counts"] == counts and result["quantized_ops"] > 0
    assert result["preset"]["name"] == "avx512_vnni" and result["reduce_range"] is False
    assert result["size_bytes"] == out.stat().st_size < result["source_size_bytes"]
    assert {"config.json", "tokenizer.json", "vocab.txt"} <= set(result["files_copied"])
    assert json.loads(out.with_suffix(".json").read_text())["method"] == "dynamic"
    assert_loads_and_runs(out, tiny["onnx"])


def test_dynamic_int8_on_o2_fused_graph(tiny, tmp_path):
    assert {"Attention", "SkipLayerNormalization"} <= set(op_counts(tiny["o2"]))
    out = tmp_path / "dyn_o2" / "model_quantized.onnx"
    result = quantize_dynamic(tiny["o2"], out, "avx2")
    counts = op_counts(out)
    assert counts.get("QAttention", 0) == 2 and counts.get("MatMulInteger", 0) > 0
    assert "Attention" in result["fused_input_ops"] and result["reduce_range"] is True
    assert_loads_and_runs(out, tiny["o2"])


def test_dynamic_rejects_unknown_exclusions(tiny, tmp_path):
    with pytest.raises(ValueError, match=r"nodes_to_exclude names \['/no/such/MatMul'\]"):
        quantize_dynamic(
            tiny["onnx"], tmp_path / "x.onnx", "avx2", nodes_to_exclude=["/no/such/MatMul"]
        )


# ---------------------------------------------------------------- ORT static


class CountingRows(list):
    """A list that records which indices were read."""

    def __init__(self, rows):
        super().__init__(rows)
        self.read: list[int] = []

    def __getitem__(self, index):
        self.read.append(index)
        return super().__getitem__(index)


def test_calibration_reader_reads_exactly_samples_rows(tiny):
    rows = CountingRows(tokenized_rows(tiny["tokenizer"], 23))
    reader = CalibrationReader(
        rows, ["input_ids", "attention_mask", "token_type_ids"], samples=10, batch_size=4
    )
    batches = []
    while (batch := reader.get_next()) is not None:
        batches.append(batch)
    assert [b["input_ids"].shape[0] for b in batches] == [4, 4, 2] == reader.batch_rows
    assert reader.rows_read == 10 and sorted(rows.read) == list(range(10))
    for b in batches:
        assert b["input_ids"].dtype == np.int64
        width = b["input_ids"].shape[1]
        lengths = b["attention_mask"].sum(1)
        assert lengths.max() == width  # padded to the longest row of the batch
        for row_ids, mask in zip(b["input_ids"], b["attention_mask"], strict=True):
            assert (row_ids[mask == 0] == 0).all()  # pad id on padding
    reader.set_range(1, 2)  # what ORT's strided mode calls
    assert reader.get_next()["input_ids"].shape[0] == 4 and reader.get_next() is None


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_static_qdq_int8(tiny, tmp_path, method):
    from datasets import Dataset

    rows = Dataset.from_list(tokenized_rows(tiny["tokenizer"], 40))
    out = tmp_path / "static" / f"model_{method}.onnx"
    result = quantize_static(
        tiny["onnx"], out, rows, method=method, samples=19, batch_size=4, preset="avx512"
    )
    counts = op_counts(out)
    assert counts.get("QuantizeLinear", 0) > 0 and counts.get("DequantizeLinear", 0) > 0
    calibration = result["calibration"]
    assert calibration["rows_read"] == 19 and calibration["batches"] == 5
    assert calibration["max_batch_rows"] <= 4 and calibration["peak_rss_mib"] > 0
    assert result["reduce_range"] is True and result["format"] == "QDQ"
    assert_loads_and_runs(out, tiny["onnx"])


def test_static_refuses_fused_graph(tiny, tmp_path):
    rows = tokenized_rows(tiny["tokenizer"], 8)
    with pytest.raises(ValueError, match="static quantization needs the unfused export"):
        quantize_static(tiny["o2"], tmp_path / "s.onnx", rows, samples=8)


def test_static_input_errors_name_the_fix(tiny, tmp_path):
    from datasets import Dataset, DatasetDict

    rows = tokenized_rows(tiny["tokenizer"], 8)
    with pytest.raises(ValueError, match="lower samples to at most 8"):
        quantize_static(tiny["onnx"], tmp_path / "s.onnx", rows, samples=9)
    with pytest.raises(TypeError, match=r"DatasetDict with the splits \['validation'\]"):
        split = DatasetDict({"validation": Dataset.from_list(rows)})
        quantize_static(tiny["onnx"], tmp_path / "s.onnx", split, samples=4)
    with pytest.raises(ValueError, match=r"unknown calibration method 'kl'.*'entropy'"):
        quantize_static(tiny["onnx"], tmp_path / "s.onnx", rows, method="kl")


# ---------------------------------------------------------------- Neural Compressor


@pytest.mark.slow  # over ~10 s on 2 cores: make test-fast leaves it out
def test_inc_missed_goal_still_saves_best_and_reloads(tiny, tmp_path):
    from transformers import BertForSequenceClassification

    from quantize.inc import DEFAULT_CONFIGS, inc_quantize, load_inc_model

    model = BertForSequenceClassification.from_pretrained(tiny["model_dir"]).eval()
    enc = tiny["tokenizer"]([" ".join(WORDS[: i + 3]) for i in range(8)], padding=True)
    tensors = {k: torch.tensor(v) for k, v in enc.items()}
    calib = [{k: v[:4] for k, v in tensors.items()}, {k: v[4:] for k, v in tensors.items()}]
    # Baseline 0.9, then every candidate drops: tolerable_loss=0 cannot be met.
    scores = iter([0.90, 0.80, 0.85, 0.70])
    seen = []

    def eval_fn(qmodel):
        seen.append(tuple(qmodel(**calib[0], labels=None).shape))  # called by name, extras ignored
        return next(scores)

    result = inc_quantize(model, calib, eval_fn, out_dir=tmp_path / "inc", tolerable_loss=0.0)
    assert result["met_tolerance"] is False
    assert result["baseline_accuracy"] == 0.90
    assert [c["config"] for c in result["candidates"]] == list(DEFAULT_CONFIGS)
    assert [c["accuracy"] for c in result["candidates"]] == [0.80, 0.85, 0.70]
    assert result["best"]["config"] == "static_kl" and result["best"]["accuracy"] == 0.85
    assert seen == [(4, 2)] * 4
    saved = json.loads((tmp_path / "inc" / "inc_result.json").read_text())
    assert saved["best"]["config"] == "static_kl" and saved["met_tolerance"] is False

    qmodel = load_inc_model(tmp_path / "inc")  # rebuilds and checks logits against the saved ones
    for batch, seq in SHAPES:
        inputs = {k: torch.from_numpy(v) for k, v in random_inputs(batch, seq).items()}
        assert tuple(qmodel(**inputs).shape) == (batch, 2)


@pytest.mark.parametrize("failure", ["returns_none", "raises"])
def test_inc_survives_autotune_returning_nothing(tiny, tmp_path, monkeypatch, failure):
    """neural-compressor #2261: autotune may return None; if it raises we evaluate ourselves."""
    import neural_compressor.torch.quantization as inc_api
    from transformers import BertForSequenceClassification

    from quantize.inc import inc_quantize

    real_autotune = inc_api.autotune

    def broken_autotune(*args, **kwargs):
        if failure == "raises":
            raise RuntimeError("tuning exploded")
        real_autotune(*args, **kwargs)
        return None

    monkeypatch.setattr(inc_api, "autotune", broken_autotune)
    model = BertForSequenceClassification.from_pretrained(tiny["model_dir"]).eval()
    enc = tiny["tokenizer"]([" ".join(WORDS[: i + 2]) for i in range(4)], padding=True)
    calib = [{k: torch.tensor(v) for k, v in enc.items()}]
    scores = iter([0.9, 0.8])
    result = inc_quantize(
        model, calib, lambda m: next(scores), out_dir=tmp_path / "inc", configs=["dynamic"]
    )
    assert result["autotune_returned_model"] is False
    assert (result["autotune_error"] is not None) == (failure == "raises")
    assert result["candidates"][0]["config"] == "dynamic" and result["best"]["accuracy"] == 0.8
    assert result["met_tolerance"] is False  # 0.8 < 0.9 * (1 - 0.01)
    from quantize.inc import load_inc_model

    rebuilt = load_inc_model(tmp_path / "inc")  # the saved candidate rebuilds (logits checked)
    assert tuple(rebuilt(**calib[0]).shape) == (4, 2)


def test_inc_unknown_config_lists_names(tiny):
    from quantize.inc import get_inc_config

    with pytest.raises(
        ValueError, match=r"'static_nope'.*\['dynamic', 'static_kl', 'static_minmax'\]"
    ):
        get_inc_config("static_nope")


# ---------------------------------------------------------------- gate


def test_gate_rejects_methods_over_the_drop():
    result = gate(
        {"static": 0.880, "dynamic": 0.905}, reference_accuracy=0.910, max_drop_points=1.0
    )
    assert isinstance(result, GateResult) and result.passed
    assert result.accepted == ["dynamic"] and result.rejected == ["static"]
    assert result.best == "dynamic"
    assert result.drops == {"static": 3.0, "dynamic": 0.5}


def test_gate_fails_when_none_passes_and_names_the_best():
    message = (
        "no quantized model is within 1 points of the reference accuracy 0.9000: "
        "static 0.8700 (drop 3.00 points), dynamic 0.8500 (drop 5.00 points). "
        "Best candidate kept: static (0.8700)."
    )
    with pytest.raises(
        QuantizationGateError, match=message.replace("(", r"\(").replace(")", r"\)")
    ) as err:
        gate({"dynamic": 0.85, "static": 0.87}, reference_accuracy=0.90)
    assert err.value.result.best == "static" and err.value.result.rejected == ["static", "dynamic"]
    assert isinstance(err.value, ValueError)


def test_gate_wants_fractions():
    with pytest.raises(ValueError, match="divide percentages by 100"):
        gate({"dynamic": 91.2}, reference_accuracy=0.92)
    with pytest.raises(ValueError, match="at least one"):
        gate({}, reference_accuracy=0.92)


# ---------------------------------------------------------------- dependency direction


def test_quantize_does_not_import_pipelines_or_export():
    package = Path(__file__).resolve().parents[2] / "quantize"
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            assert not {"pipelines", "export"} & set(roots), f"{path.name} imports {roots}"


def test_fp16_graph_is_refused(tiny, tmp_path):
    model = onnx.load(str(tiny["onnx"]))
    first = model.graph.initializer[0]
    half = onnx.numpy_helper.to_array(first).astype(np.float16)
    first.CopyFrom(onnx.numpy_helper.from_array(half, first.name))
    onnx.save(model, str(tmp_path / "model.onnx"))
    with pytest.raises(ValueError, match="holds float16 weights.*Quantize the fp32 export"):
        quantize_dynamic(tmp_path / "model.onnx", tmp_path / "q.onnx", "avx2")


def test_openvino_overflow_fix_follows_the_cpus_int8_dot_product():
    """Without VNNI the int8 dot product saturates in int16: NNCF must quantize MatMul weights to
    half the range there; with VNNI (or off x86) its default stays."""
    from quantize.openvino import overflow_fix_for

    assert overflow_fix_for({"sse4_2", "avx2", "fma"}) == "enable"  # Zen 3, Haswell..Coffee Lake
    assert overflow_fix_for({"avx2", "avx512f", "avx512bw"}) == "enable"  # Skylake-SP
    assert overflow_fix_for({"avx2", "avx512f", "avx512_vnni"}) == "default"  # Cascade Lake, Zen 4
    assert overflow_fix_for({"avx2", "avx_vnni"}) == "default"  # Alder Lake
    assert overflow_fix_for({"asimd", "asimddp"}) == "default"  # ARM

"""GPU paths: the parts that need no GPU run here (routing, TensorRT options, fp16 conversion,
precision and teacher-dtype rules, a half-precision teacher in the loss); the `gpu` tests at the
end exercise the real CUDA paths and are skipped without CUDA (make test-gpu).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from pipelines.bench.gpu import (
    CUDA_EP,
    NO_CUDA_EP,
    ORT_INT8_CUDA,
    TRT_EP,
    Route,
    cuda_status,
    int8_kind,
    onnx_routes,
    to_fp16,
    trt_provider_options,
)
from pipelines.core.config import load_recipe
from tests.conftest import ROOT, tiny_bert, tiny_recipe, write_recipe

WORDS = ["good", "bad", "movie", "film", "great", "awful", "the", "a", "plot", "acting"]
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
NO_CUDA = "torch.cuda.is_available() is False (CPU-only torch build, torch 2.13.0+cpu)"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny BERT classifier (saved), its ONNX export, and dynamic / u8 QDQ / s8 QDQ int8 copies."""
    from export.onnx_export import export_classifier
    from quantize.ort_dynamic import quantize_dynamic
    from quantize.ort_static import quantize_static

    root = tmp_path_factory.mktemp("gpu")
    model_dir = root / "model"
    # initializer_range 0.2: logits of order 1 (the default 0.02 gives ~0.01), so fp16 errors show
    model, tokenizer = tiny_bert(model_dir, WORDS, initializer_range=0.2)
    model.save_pretrained(model_dir)
    export_classifier(model_dir, root / "onnx")
    fp32 = root / "onnx" / "model.onnx"
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 12)))) for _ in range(16)]
    enc = tokenizer(texts)
    rows = [{k: enc[k][i] for k in enc} for i in range(16)]
    quantize_dynamic(fp32, root / "dynamic" / "model.onnx", "avx512_vnni")
    quantize_static(fp32, root / "u8" / "model.onnx", rows, samples=16, preset="avx512_vnni")
    quantize_static(fp32, root / "s8" / "model.onnx", rows, samples=16, preset="tensorrt")
    return {"root": root, "model": model_dir, "fp32": fp32}


def _inputs(batch: int, seq: int) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(batch * seq).integers(5, 5 + len(WORDS), (batch, seq))
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}


# ---------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("precision", "kind", "cuda", "providers", "expected"),
    [
        # fp32 ONNX: CUDA EP fp32 and fp16 when both CUDA and the EP are there
        ("fp32", None, True, [CUDA_EP], [("fp32", CUDA_EP, None), ("fp16", CUDA_EP, None)]),
        ("fp32", None, False, [CUDA_EP], [("fp32", CUDA_EP, NO_CUDA), ("fp16", CUDA_EP, NO_CUDA)]),
        ("fp32", None, True, [], [("fp32", CUDA_EP, NO_CUDA_EP), ("fp16", CUDA_EP, NO_CUDA_EP)]),
        # int8 ONNX never reaches the CUDA EP: TensorRT for s8 QDQ, else a skip reason
        ("int8", "qdq-s8", True, [TRT_EP, CUDA_EP], [("int8", TRT_EP, None)]),
        ("int8", "qdq-s8", True, [CUDA_EP], [("int8", TRT_EP, "no TensorrtExecutionProvider")]),
        ("int8", "qdq-s8", False, [TRT_EP, CUDA_EP], [("int8", TRT_EP, NO_CUDA)]),
        ("int8", "qdq-u8", True, [TRT_EP, CUDA_EP], [("int8", None, "quantize.preset: tensorrt")]),
        ("int8", "dynamic", True, [TRT_EP, CUDA_EP], [("int8", None, "dynamic int8")]),
        ("int8", "unknown", True, [TRT_EP, CUDA_EP], [("int8", None, "of kind 'unknown'")]),
    ],
)
def test_routing_table(precision, kind, cuda, providers, expected):
    routes = onnx_routes(precision, kind, None if cuda else NO_CUDA, providers)
    assert [(r.precision, r.provider) for r in routes] == [(p, e) for p, e, _ in expected]
    for route, (_, _, why) in zip(routes, expected, strict=True):
        if why is None:
            assert route.skipped is None
        else:
            assert why in route.skipped
        if route.precision == "int8":
            assert route.provider != CUDA_EP  # onnxruntime #10267
            if route.skipped and route.provider is None:
                assert route.skipped.startswith(ORT_INT8_CUDA)
    assert [r.fp16 for r in routes] == [r.precision == "fp16" for r in routes]


def test_int8_kind_reads_the_graph(tiny):
    root = tiny["root"]
    assert int8_kind(root / "dynamic") == "dynamic"
    assert int8_kind(root / "u8" / "model.onnx") == "qdq-u8"  # CPU presets: u8 activations
    assert int8_kind(root / "s8") == "qdq-s8"  # quantize.preset: tensorrt
    assert int8_kind(tiny["fp32"]) == "unknown"
    assert onnx_routes("int8", int8_kind(root / "s8"), None, [TRT_EP, CUDA_EP]) == [
        Route("int8", TRT_EP)
    ]


# ---------------------------------------------------------------- TensorRT options


def test_trt_options_from_a_recipe(tmp_path):
    recipe = load_recipe(
        write_recipe(
            tmp_path / "r.yaml",
            tiny_recipe(bench={"batch_sizes": [8, 1, 32], "seq_lens": [64, 16]}),
        )
    )
    cache = tmp_path / "runs" / "tiny" / "bench" / "trt-cache"
    options = trt_provider_options(INPUTS, recipe.bench.batch_sizes, recipe.bench.seq_lens, cache)
    assert options["trt_profile_min_shapes"] == (
        "input_ids:1x16,attention_mask:1x16,token_type_ids:1x16"
    )
    assert options["trt_profile_opt_shapes"] == (
        "input_ids:32x64,attention_mask:32x64,token_type_ids:32x64"
    )
    assert options["trt_profile_max_shapes"] == options["trt_profile_opt_shapes"]
    assert options["trt_engine_cache_enable"] is True
    assert options["trt_engine_cache_path"] == options["trt_timing_cache_path"] == str(cache)
    assert options["trt_int8_enable"] is True and options["trt_fp16_enable"] is True
    assert trt_provider_options(["input_ids"], [4], [8], cache)["trt_profile_min_shapes"] == (
        "input_ids:4x8"
    )
    with pytest.raises(ValueError, match="needs input names, batch sizes and sequence lengths"):
        trt_provider_options(INPUTS, [], [16], cache)


# ---------------------------------------------------------------- fp16


def test_fp16_conversion_is_valid_and_close_to_fp32(tiny):
    model = to_fp16(tiny["fp32"])
    onnx.checker.check_model(model)
    weights = [t for t in model.graph.initializer if len(t.dims) == 2]  # the MatMul weights
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    io = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert io["input_ids"] == onnx.TensorProto.INT64  # keep_io_types: same feeds as fp32
    assert io["logits"] == onnx.TensorProto.FLOAT
    fp16 = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    fp32 = ort.InferenceSession(str(tiny["fp32"]), providers=["CPUExecutionProvider"])
    for batch, seq in ((1, 4), (4, 30)):
        inputs = _inputs(batch, seq)
        reference = fp32.run(None, inputs)[0]
        assert np.abs(reference).max() > 0.1  # logits big enough for the check to mean something
        # fp16 keeps ~3 significant digits: |error| ~6e-4 on logits ~1.3 here; 1e-2 leaves room
        np.testing.assert_allclose(fp16.run(None, inputs)[0], reference, rtol=0.01, atol=0.01)


def test_worker_converts_to_fp16_at_load(tiny, monkeypatch):
    import onnxruntime as ort

    from pipelines.bench import gpu
    from pipelines.bench.worker import run_job

    converted, sessions = [], []
    real_convert, real_session = gpu.to_fp16, ort.InferenceSession
    monkeypatch.setattr(gpu, "to_fp16", lambda p: converted.append(str(p)) or real_convert(p))

    def session(source, *args, **kwargs):  # what the worker hands ORT: a path or fp16 bytes
        sessions.append(source)
        return real_session(source, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", session)

    job = {
        "artifact": "tiny-onnx",
        "backend": "onnxruntime",
        "path": str(tiny["fp32"].parent),
        "precision": "fp16",
        "device": "cpu",
        "threads": 1,
        "fp16": True,
        "batch_sizes": [2],
        "seq_lens": [8],
        "min_runs": 2,
        "min_seconds": 0.0,
        "warmup_runs": 1,
        "vocab_size": 15,
    }
    result = run_job(job)
    assert [c["batch"] for c in result["cells"]] == [2] and result["cells"][0]["p50_ms"] > 0
    assert result["providers"] == ["CPUExecutionProvider"] and result["io_binding"] is False
    assert converted == [str(tiny["fp32"])]  # converted once, at load
    graph = onnx.load_from_string(sessions[-1])  # the session got the converted graph's bytes
    weights = [t for t in graph.graph.initializer if len(t.dims) == 2]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    run_job({**job, "precision": "fp32", "fp16": False})
    assert len(converted) == 1 and isinstance(sessions[-1], str)  # fp32: the file, unconverted
    with pytest.raises(ValueError, match="fp16 conversion asked for a fp32 row"):
        run_job({**job, "precision": "fp32"})


# ---------------------------------------------------------------- precision and teacher dtype


def _recipe(tmp_path: Path, **sections):
    return load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe(**sections)))


def test_precision_and_teacher_dtype_on_the_cpu(tmp_path):
    from pipelines.core.errors import ConfigError, DistilleryError
    from pipelines.train.settings import resolve_precision, resolve_teacher_dtype

    recipe = _recipe(tmp_path, distill={"teacher_dtype": "auto"})
    assert recipe.distill.teacher_dtype == "auto"
    assert resolve_precision(recipe, "cpu") == "fp32"
    assert resolve_teacher_dtype(recipe, "cpu") == "fp32"  # auto follows the training precision
    assert resolve_teacher_dtype(_recipe(tmp_path), "cpu") == "fp32"  # the default
    for dtype in ("bf16", "fp16"):
        with pytest.raises(DistilleryError, match=f"distill.teacher_dtype is '{dtype}' but"):
            resolve_teacher_dtype(_recipe(tmp_path, distill={"teacher_dtype": dtype}), "cpu")
    with pytest.raises(ConfigError, match="Allowed values: auto, fp32, bf16, fp16"):
        _recipe(tmp_path, distill={"teacher_dtype": "half"})


def test_half_teacher_on_the_cpu_fails_before_any_work(tmp_path):
    from pipelines.core.errors import DistilleryError
    from pipelines.run.runner import run_pipeline

    recipe = _recipe(tmp_path, distill={"teacher_dtype": "bf16"})
    with pytest.raises(DistilleryError, match="set distill.teacher_dtype: fp32"):
        run_pipeline(recipe, tmp_path / "runs", target="distill", echo=lambda _: None)
    assert not (tmp_path / "runs" / "tiny" / "teacher").exists()


def test_new_keys_leave_existing_hashes_alone(tmp_path, monkeypatch):
    """teacher_dtype at its default and the cosmetic DDP key hash as runs made before them did."""
    import pipelines.run.hashing as stages
    from pipelines.run.registry import STAGES

    recipe = _recipe(tmp_path)
    before = {n: stages.stage_hash(recipe, STAGES[n], {}, "d") for n in ("teacher", "distill")}
    real = stages.recipe_to_dict

    def without_new_keys(r):
        config = real(r)
        del config["distill"]["teacher_dtype"], config["train"]["ddp_find_unused_parameters"]
        del config["train"]["optim"]
        return config

    monkeypatch.setattr(stages, "recipe_to_dict", without_new_keys)
    assert before == {
        n: stages.stage_hash(recipe, STAGES[n], {}, "d") for n in ("teacher", "distill")
    }
    monkeypatch.undo()
    changed = _recipe(tmp_path, distill={"teacher_dtype": "auto"})
    assert stages.stage_hash(changed, STAGES["distill"], {}, "d") != before["distill"]
    ddp = _recipe(tmp_path, train={"device": "cpu", "ddp_find_unused_parameters": True})
    assert stages.stage_hash(ddp, STAGES["teacher"], {}, "d") == before["teacher"]
    fused = _recipe(tmp_path, train={"device": "cpu", "optim": "adamw_torch_fused"})
    assert stages.stage_hash(fused, STAGES["teacher"], {}, "d") != before["teacher"]


def test_half_teacher_outputs_reach_the_loss_in_fp32(tmp_path):
    """A bf16 teacher (what distill.teacher_dtype asks for on a GPU) with a hidden-state match."""
    from datasets import Dataset
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertTokenizerFast,
        TrainingArguments,
    )

    from distill.api import distill
    from distill.combined import LossSpec
    from distill.trainer import as_float32

    def bert(hidden: int):
        torch.manual_seed(hidden)
        shape = {"num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
        config = BertConfig(vocab_size=20, hidden_size=hidden, num_labels=2, **shape)
        return BertForSequenceClassification(config)

    teacher = bert(32).to(torch.bfloat16)
    out = as_float32(teacher(input_ids=torch.tensor([[2, 7, 3]]), output_hidden_states=True))
    assert out.logits.dtype == torch.float32
    assert all(h.dtype == torch.float32 for h in out.hidden_states)

    tokens = [[2, 5 + i % 10, 6 + i % 7, 3] for i in range(8)]
    data = Dataset.from_dict(
        {"input_ids": tokens, "attention_mask": [[1] * 4] * 8, "labels": [i % 2 for i in range(8)]}
    )
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    spec = LossSpec(matches=["hidden_mse"], layer_map=[[0, 0]])
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=4,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        remove_unused_columns=False,
    )
    trainer = distill(teacher, bert(16), data, BertTokenizerFast(str(vocab)), spec, args)
    assert trainer.state.global_step == 2
    assert all(np.isfinite(h["loss"]) for h in trainer.state.log_history if "loss" in h)
    assert next(trainer.teacher.parameters()).dtype == torch.bfloat16  # stays half


# ---------------------------------------------------------------- real CUDA (make test-gpu)


@pytest.mark.gpu
def test_cuda_bench_rows_measure_each_route(tiny, tmp_path):
    from pipelines.bench.artifacts import Artifact
    from pipelines.bench.gpu import gpu_rows

    root = tiny["root"]
    artifacts = [
        Artifact("tiny", "torch", str(tiny["model"])),
        Artifact("tiny-onnx", "onnxruntime", str(tiny["fp32"].parent)),
        Artifact("tiny-int8-static", "onnxruntime", str(root / "s8"), "int8"),
        Artifact("tiny-int8-dynamic", "onnxruntime", str(root / "dynamic"), "int8"),
    ]
    cache = tmp_path / "trt-cache"
    settings = {"min_runs": 3, "min_seconds": 0.0, "warmup_runs": 2, "cache_dir": cache}
    rows = gpu_rows(artifacts, [1, 4], [8, 16], **settings)
    by = {(r["artifact"], r["precision"]): r for r in rows if r.get("batch") in (None, 4)}
    for key in (("tiny", "fp32"), ("tiny", "bf16")):
        assert by[key]["p50_ms"] > 0, by[key]
    providers = ort.get_available_providers()
    for precision in ("fp32", "fp16"):
        row = by[("tiny-onnx", precision)]
        if CUDA_EP not in providers:
            assert row["skipped"] == NO_CUDA_EP
            continue
        assert row["p50_ms"] > 0 and row["providers"][0] == CUDA_EP and row["io_binding"], row
    assert "dynamic int8" in by[("tiny-int8-dynamic", "int8")]["skipped"]
    trt = by[("tiny-int8-static", "int8")]
    if TRT_EP not in providers:
        assert "no TensorrtExecutionProvider" in trt["skipped"]
        return
    assert trt["p50_ms"] > 0 and trt["providers"][0] == TRT_EP, trt
    engines = sorted(p.name for p in cache.iterdir())
    assert engines  # the engine (and timing cache) were written
    again = gpu_rows(artifacts[2:3], [1, 4], [8, 16], **settings)
    assert sorted(p.name for p in cache.iterdir()) == engines  # reused, not rebuilt
    assert all(r["p50_ms"] > 0 for r in again)


@pytest.mark.gpu
def test_cuda_training_autocast_and_half_teacher(tmp_path):
    from pipelines.run.runner import run_pipeline

    recipe = _recipe(
        tmp_path,
        train={"device": "cuda", "logging_steps": 10},
        distill={"epochs": 1, "learning_rate": 1e-3, "batch_size": 16, "teacher_dtype": "auto"},
    )
    manifests = run_pipeline(recipe, tmp_path / "runs", target="distill", echo=lambda _: None)
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    teacher, student = manifests["teacher"], manifests["distill"]
    assert teacher["training"]["precision"] == student["training"]["precision"] == expected
    assert student["training"]["teacher_dtype"] == expected
    assert teacher["metrics"]["accuracy"] > 0.8
    assert student["metrics"]["accuracy"] >= 0.85 * teacher["metrics"]["accuracy"]
    saved = json.loads((tmp_path / "runs" / "tiny" / "distill" / "config.json").read_text())
    assert saved.get("torch_dtype", saved.get("dtype")) in (None, "float32")  # saved in fp32


def test_bench_gpu_without_cuda_says_so_and_exits_0():
    if cuda_status() is None:
        pytest.skip("a CUDA device is present; this is the no-CUDA path")
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "bench-gpu", "recipes/demo.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-1000:]
    assert "bench-gpu: skipped, no CUDA here: torch.cuda.is_available() is False" in done.stdout

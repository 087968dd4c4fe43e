"""DDP on the CPU: `torchrun --nproc_per_node 2` (gloo) against one process with twice the batch.

Two processes with per-device batch 16 and one process with batch 16 × 2 = 32 see the same 32 rows
at every step (the Trainer's seeded random sampler, each global batch split in two by accelerate),
start from the same weights and use the same learning rate (LR policy: as given,
pipelines.train.settings.LR_POLICY). DDP averages the two halves' gradients, which is the gradient of the
32-row mean loss, so the two runs do the same arithmetic up to float summation order, except that
each process draws its own dropout masks. The test switches dropout off (in the teacher's
config.json, which the teacher-layers student copies) so only float noise is left: the eval logits
agree to ~4e-7 here. Tolerances: logits 1e-4 (over 100× that noise; dropout alone moves them by
~0.04), accuracy one eval row (a near-tie may flip). `group_by_length` is off because its sampler
draws from the global RNG, whose state differs between the two launches (the runs then see the
rows in another order and differ by ~0.01-0.04 in logits: the same training, not the same
arithmetic).

The distillation projections live inside the DDP-wrapped DistillationModule; a separate
2-process check shows DDP averages their gradients, and that the ranks' samplers draw one
permutation per epoch (pipelines.train.callbacks.sampler_rng_sync). All of it: ~50 s on 2 busy cores (4 launches, one thread
each).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, tiny_recipe, write_recipe

PER_DEVICE, WORLD = 16, 2
LOGIT_ATOL = 1e-4


def _recipe(tmp: Path, name: str, batch: int) -> Path:
    raw = tiny_recipe(
        distill={
            "epochs": 1,
            "learning_rate": 1e-3,
            "batch_size": batch,
            "ablation": True,  # 2 more variants: labels only; KD + matches (teacher forward)
        },
        train={"device": "cpu", "logging_steps": 10, "group_by_length": False},
    )
    return write_recipe(tmp / name, raw)


def _launch(args: list[str], processes: int) -> subprocess.CompletedProcess:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",  # as torchrun sets it: one thread per process on 2 cores
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    result = subprocess.run(
        [sys.executable, *(launcher if processes > 1 else []), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def _run(args: list[str], runs: Path, processes: int) -> subprocess.CompletedProcess:
    return _launch(["-m", "pipelines", "run", *args, "--runs-dir", str(runs)], processes)


def _files(runs: Path) -> list[str]:
    return sorted(str(p.relative_to(runs)) for p in runs.rglob("*") if p.is_file())


def _eval_logits(folder: Path, recipe_path: Path) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipelines.core.config import load_recipe
    from pipelines.data.loading import load_task_data, tokenize
    from pipelines.train.evaluation import predict_logits

    recipe = load_recipe(recipe_path)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    eval_set = tokenize(load_task_data(recipe).eval, tokenizer, recipe)
    return predict_logits(model, eval_set, tokenizer, progress=False)


def _without_dropout(stage_dir: Path) -> None:
    """Dropout 0 in a finished stage's config.json (see the module docstring), and the file's
    record in its manifest updated to match, so the next stage's input check accepts the edit."""
    from pipelines.core.runs import sha256_file

    path = stage_dir / "config.json"
    config = json.loads(path.read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    path.write_text(json.dumps(config))
    manifest = json.loads((stage_dir / "manifest.json").read_text())
    if "config.json" in manifest.get("files", {}):
        manifest["files"]["config.json"] = {
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
        }
        (stage_dir / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Teacher on 2 processes; then distill on 2 processes (batch 16) and on 1 (batch 32)."""
    tmp = tmp_path_factory.mktemp("ddp")
    two, one = _recipe(tmp, "two.yaml", PER_DEVICE), _recipe(tmp, "one.yaml", PER_DEVICE * WORLD)
    runs2, runs1 = tmp / "runs2", tmp / "runs1"
    teacher_out = _run([str(two), "--stage", "teacher"], runs2, WORLD)
    teacher = runs2 / "tiny" / "teacher"
    _without_dropout(teacher)
    shutil.copytree(teacher, runs1 / "tiny" / "teacher")  # both distill from the same teacher
    distill_out = _run([str(two), "--stage", "distill"], runs2, WORLD)
    _run([str(one), "--stage", "distill"], runs1, 1)
    return {
        "runs1": runs1,
        "runs2": runs2,
        "recipe": one,
        "stdout": teacher_out.stdout + distill_out.stdout,
    }


def _manifest(runs: Path, stage: str) -> dict:
    return json.loads((runs / "tiny" / stage / "manifest.json").read_text())


@pytest.mark.slow  # teacher and distill under torchrun on 2 processes, distill on 1
def test_two_processes_write_exactly_what_one_process_writes(runs):
    files2, files1 = _files(runs["runs2"]), _files(runs["runs1"])
    assert files2 == files1  # no rank-suffixed, duplicate or temporary files
    assert [f for f in files2 if f.endswith("manifest.json")] == [
        "tiny/distill/manifest.json",
        "tiny/teacher/manifest.json",
    ]
    assert len([f for f in files2 if f.startswith("tiny/cache/")]) == 1  # teacher logits, once
    assert "tiny/distill/ablation.json" in files2
    assert not any("rank" in f or f.endswith(".tmp") for f in files2)
    assert not (runs["runs2"] / "tiny" / "teacher" / "checkpoints").exists()


@pytest.mark.slow  # teacher and distill under torchrun on 2 processes, distill on 1
def test_only_rank_zero_logs_and_prints(runs):
    for stage in ("teacher", "distill"):
        log = (runs["runs2"] / "tiny" / stage / "log.txt").read_text()
        assert log.count(f"stage {stage} started") == 1
        assert log.count(f"stage {stage} finished") == 1
        assert runs["stdout"].count(f"[{stage}] running") == 1
    assert runs["stdout"].count("[teacher] skipped") == 1  # the distill launch, rank 0 only


@pytest.mark.slow  # teacher and distill under torchrun on 2 processes, distill on 1
def test_manifest_reports_world_size_global_batch_and_lr_policy(runs):
    for stage, per_device in (("teacher", 16), ("distill", PER_DEVICE)):
        training = _manifest(runs["runs2"], stage)["training"]
        assert training["world_size"] == WORLD
        assert training["per_device_batch_size"] == per_device
        assert training["global_batch_size"] == per_device * WORLD
        assert training["ddp_backend"] == "gloo"
        assert training["lr_scaling"].startswith("none")
    two = _manifest(runs["runs2"], "distill")["training"]
    one = _manifest(runs["runs1"], "distill")["training"]
    assert one["world_size"] == 1 and one["global_batch_size"] == two["global_batch_size"] == 32
    assert one["learning_rate"] == two["learning_rate"]  # not scaled with the world size
    assert one["global_step"] == two["global_step"] == 800 // 32


@pytest.mark.slow  # teacher and distill under torchrun on 2 processes, distill on 1
def test_two_processes_train_the_same_student_as_one_with_the_global_batch(runs):
    logits2 = _eval_logits(runs["runs2"] / "tiny" / "distill", runs["recipe"])
    logits1 = _eval_logits(runs["runs1"] / "tiny" / "distill", runs["recipe"])
    diff = float(np.abs(logits2 - logits1).max())
    assert diff < LOGIT_ATOL, f"max |logit difference| {diff:.2e}"
    m2, m1 = _manifest(runs["runs2"], "distill"), _manifest(runs["runs1"], "distill")
    rows = m1["metrics"]["eval_rows"]
    assert abs(m2["metrics"]["accuracy"] - m1["metrics"]["accuracy"]) <= 1 / rows
    assert m2["training"]["cached_teacher_logits"] is True
    for row2, row1 in zip(m2["ablation"]["rows"], m1["ablation"]["rows"], strict=True):
        assert row2["variant"] == row1["variant"]
        assert abs(row2["accuracy"] - row1["accuracy"]) <= 1 / rows


HELPERS_CHECK = """
import json
import sys
from types import SimpleNamespace
import torch
import torch.distributed as dist
from transformers import BertConfig, BertForSequenceClassification
from distill.combined import CombinedLoss, LossSpec
from distill.trainer import DistillationModule, TeacherOutputs
from pipelines.train.callbacks import sampler_rng_sync

dist.init_process_group("gloo")
rank = dist.get_rank()

def bert(hidden, seed):
    torch.manual_seed(seed)
    shape = dict(num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    config = BertConfig(vocab_size=30, hidden_size=hidden, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, **shape)
    return BertForSequenceClassification(config)

teacher = bert(32, 0).eval()
spec = LossSpec(matches=["hidden_mse"], layer_map=[(0, 0)])
torch.manual_seed(1)
module = DistillationModule(bert(16, 1), CombinedLoss(spec, 16, 32))  # a 16 -> 32 projection
torch.manual_seed(10 + rank)  # each rank its own batch
ids = torch.randint(5, 30, (4, 6))
with torch.no_grad():
    out_t = teacher(input_ids=ids, output_hidden_states=True)
batch = dict(input_ids=ids, labels=torch.tensor([0, 1, 0, 1]),
             teacher=TeacherOutputs(out_t.logits, out_t.hidden_states))
module(**batch).loss.backward()  # this rank alone
local = module.loss.projections["hidden_mse"].weight.grad.clone()
module.zero_grad()
ddp = torch.nn.parallel.DistributedDataParallel(module)
ddp(**batch).loss.backward()  # DDP averages every parameter's gradient, projections included
averaged = module.loss.projections["hidden_mse"].weight.grad
torch.manual_seed(rank)  # the ranks' CPU RNGs apart, as CPU dropout leaves them after an epoch
sampler_rng_sync().on_epoch_begin(SimpleNamespace(world_size=2), None, None)
order = torch.randperm(8).tolist()  # what the length-grouped sampler would draw
with open(f"{sys.argv[1]}/rank{rank}.json", "w") as out:  # stdout lines of two ranks can mix
    json.dump({"local": local.flatten().tolist(), "averaged": averaged.flatten().tolist(),
               "order": order}, out)
dist.destroy_process_group()
"""


@pytest.mark.slow  # two processes under torchrun (kept out of make test-fast's 5 minutes)
def test_projection_grads_and_sampler_rng_agree_across_processes(tmp_path):
    """The projections live in the DDP-wrapped DistillationModule, so DDP averages their
    gradients like the student's; no hook of ours does it."""
    script = tmp_path / "helpers_check.py"
    script.write_text(HELPERS_CHECK)
    _launch([str(script), str(tmp_path)], WORLD)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD))
    assert rank0["local"] != rank1["local"]  # different batches, different local gradients
    mean = (np.array(rank0["local"]) + np.array(rank1["local"])) / 2
    np.testing.assert_allclose(rank0["averaged"], mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rank1["averaged"], mean, rtol=1e-5, atol=1e-7)
    assert rank0["order"] == rank1["order"]  # one permutation, so the shards partition the rows
    assert sorted(rank0["order"]) == list(range(8))


def test_world_comes_from_the_launcher_environment(monkeypatch):
    from pipelines.core import distributed

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.world() == distributed.World(rank=0, local_rank=0, world_size=1)
    assert distributed.is_main() and distributed.share({"a": 1}) == {"a": 1}
    with distributed.main_first():  # one process: no barrier, no process group needed
        pass
    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("RANK", "9")
    monkeypatch.setenv("LOCAL_RANK", "1")
    w = distributed.world()
    assert (w.rank, w.local_rank, w.world_size, w.is_main, w.distributed) == (9, 1, 16, False, True)
    assert distributed.backend_for("cuda") == "nccl" and distributed.backend_for("cpu") == "gloo"

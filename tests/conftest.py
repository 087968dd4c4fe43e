"""Shared fixtures: tiny recipes, generated data files, runs shared by the session, markers that
skip cleanly.

The tests come in tiers that mirror the tree:
- tests/lib/: the libraries (modelkit, distill, export, quantize), on tiny models in memory;
- tests/stages/: one stage, one of its parts or the runner at a time, on the tiny recipe;
- tests/e2e/: whole pipelines, the CLI and the Python API, bundles, the real-data tests.
`make test-fast` runs lib and stages without the tests marked `slow` (over ~30 s on 2 cores, the
family x task-type matrices among them); `make test` runs everything. Test modules import
nothing from each other: what they share lives here or in tests/families.py.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DISTILLERY_PROGRESS", "0")  # no progress lines unless a test asks
# One PyTorch thread per test process (and the CLI runs it starts), set before torch is imported:
# the tiny models' ops are too small to split, and on 2 busy cores OpenMP's second thread only
# spins. tests/stages/test_distill.py took 31 CPU s at 1 thread, over 80 at the default 2 (same
# load). The real-data test sets its own (tests/e2e/test_real.py); export OMP_NUM_THREADS to
# override.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    has_shared = (SHARED / "data" / "sst2").is_dir() and (
        SHARED / "models" / "all-minilm-l6-v2"
    ).is_dir()
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    for item in items:
        if "real" in item.keywords and not has_shared:
            item.add_marker(
                pytest.mark.skip(reason=f"needs ../shared (SST-2 and MiniLM) at {SHARED}")
            )
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(
                pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
            )


def tiny_recipe(**sections) -> dict:
    """A recipe dict for a 2-layer BERT teacher on generated data; sections override keys."""
    recipe = {
        "name": "tiny",
        "seed": 0,
        "task": {
            "text_columns": ["text"],
            "label_column": "label",
            "labels": ["negative", "positive"],
        },
        "data": {"source": "synthetic:sentiment", "synthetic_rows": 800, "max_length": 24},
        "teacher": {
            "init": "config",
            "config": {
                "num_hidden_layers": 2,
                "hidden_size": 32,
                "num_attention_heads": 2,
                "intermediate_size": 64,
            },
            "epochs": 4,
            "learning_rate": 3e-3,
            "batch_size": 16,
            # Many tests distil a random or half-trained teacher on purpose; the guard that
            # refuses one is tested where it is meant (tests/stages/test_init.py, test_newcomer).
            "min_lift": None,
        },
        "student": {"init": "teacher_layers", "layers": [1]},
        "distill": {"epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
        "train": {"device": "cpu", "logging_steps": 10},
        # Tests that assert on the pick run while other tests load the cores: they recommend
        # from whatever they measured (tests/test_runtime.py checks the withholding itself).
        "bench": {
            "withhold_noisy": False,
            # The GEMM ceiling (~4 s) and the 2 s watch for other work before each grid are
            # measured where they are tested (test_quantize_stage, tests/stages/test_bench.py).
            "ceiling_size": 0,
            "load_sample_s": 0,
        },
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(recipe.get(section), dict):
            recipe[section] = {**recipe[section], **values}
        else:
            recipe[section] = values
    return recipe


# The smallest run through the report: one student export (plain + O2), one int8, a 1-cell grid.
SECTIONS = {
    "distill": {"epochs": 0.5, "batch_size": 16},
    "export": {"teacher": False},
    "quantize": {"methods": ["dynamic"], "teacher": False},
    "bench": {
        "batch_sizes": [1],
        "seq_lens": [16],
        "threads": [1],
        "min_runs": 3,
        "min_seconds": 0.02,
        "warmup_runs": 1,
        "bucket": False,
        "gpu": False,
    },
    "bundle": {"cold_start_runs": 1, "latency_sentences": 16, "latency_repeats": 2},
}
# The artifacts the task-type matrices bench, one of each backend and role the tests read (each
# is a worker process of its own: ~8 CPU s of imports for torch, under 1 s for ORT; the fused O2
# export runs under ORT in the export stage's parity check already). The family matrix benches
# the last two.
BENCHED = ["teacher", "student-int8-dynamic", "student-int8-peer"]
FAMILY_MATCHES = ["hidden_mse", "attention_kl", "value_relation"]


def family_recipe(family: str, model_dir: Path, **overrides) -> dict:
    """The tiny recipe through the bundle for a teacher of `family` saved in `model_dir`
    (tests/families.py builds it): copied-layer student with hidden, attention and value-relation
    matches, ORT int8 dynamic and static, the dynamic one bundled."""
    sections = {
        **SECTIONS,
        "name": family,
        "teacher": {
            "init": "pretrained",
            "model": str(model_dir),
            "epochs": 4,
            "learning_rate": 1e-3,  # 3e-3 leaves the tiny RoBERTa at chance
            "batch_size": 16,
        },
        "distill": {
            **SECTIONS["distill"],
            "epochs": 1,  # half an epoch leaves the 1-layer ELECTRA student at chance
            "matches": FAMILY_MATCHES,
            "weights": {"task": 0.5, "kd": 0.5, **dict.fromkeys(FAMILY_MATCHES, 0.5)},
        },
        "quantize": {"methods": ["dynamic", "static"], "teacher": False},
        "bundle": {**SECTIONS["bundle"], "artifact": "student-int8-dynamic"},
        # each benched artifact is a worker process of its own: time the ones asserted on
        # the int8 student beside the peer; the teacher's torch worker (~8 s of imports per case)
        # is benched by the task-type matrices, whose heads differ
        "bench": {**SECTIONS["bench"], "artifacts": BENCHED[1:]},
        **overrides,
    }
    return tiny_recipe(**sections)


def tiny_bert(folder: Path, words: list[str], seed: int = 0, **config):
    """(model, tokenizer): a tiny BERT classifier and a word-level tokenizer whose vocab.txt and
    tokenizer files are saved in `folder`; the model is not saved (callers may change it first).
    `config` overrides the 2-layer, hidden-32, 2-head shape."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    tokenizer.save_pretrained(folder)
    shape = {
        "vocab_size": tokenizer.vocab_size,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        **config,
    }
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**shape)).eval(), tokenizer


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------- runs shared by the session
# Training is where the suite's time goes. A test that only reads a run's outputs takes one of these
# session runs as it is; a test that changes a run works on a copy (`seed_run`, or copytree of the
# runs folder). The runner skips a copied stage whose config matches, as it skips any finished one.


def seed_run(runs: Path, source: Path, *stages: str, name: str = "tiny") -> Path:
    """Copy the finished `stages` of the run folder `source` (a runs/<name> folder) into
    runs/<name>; returns `runs`."""
    for stage in stages:
        shutil.copytree(source / stage, runs / name / stage)
    return runs


def _made_once(tmp_path_factory, name: str, make):
    """make(tmp) -> (tmp, manifests, lines), called once per test run: under pytest-xdist
    (`make test` runs the suite in one worker process per core) each worker has a session of its
    own, so the first worker to ask makes the run in the workers' common temp folder under a file
    lock, and the others wait for it and read the same folder. Shared runs are read, never changed
    (a test that changes one copies it first), so one copy serves every worker."""
    import fcntl

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return make(tmp_path_factory.mktemp(name))
    common = tmp_path_factory.getbasetemp().parent  # .../pytest-N, above each worker's popen-gwK
    tmp, record = common / name, common / f"{name}.json"
    with open(common / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if make() raises
        if record.is_file():
            made = json.loads(record.read_text())
            return tmp, made["manifests"], made["lines"]
        shutil.rmtree(tmp, ignore_errors=True)  # a worker that failed to make it left this
        tmp.mkdir()
        _, manifests, lines = make(tmp)
        record.write_text(json.dumps({"manifests": manifests, "lines": lines}))
        return tmp, manifests, lines


def _shared_run(tmp, seeded_from, target: str, **sections):
    """(tmp, manifests, lines) of tiny_recipe(**sections) run up to `target` in tmp/runs, its
    recipe in tmp/recipe.yaml, starting from the teacher and distill of `seeded_from` if given."""
    from pipelines.core.config import load_recipe
    from pipelines.run.runner import run_pipeline

    if seeded_from is not None:
        stages = [s for s in ("teacher", "distill") if (seeded_from / s).is_dir()]
        seed_run(tmp / "runs", seeded_from, *stages)
    path = write_recipe(tmp / "recipe.yaml", tiny_recipe(**sections))
    lines = []
    manifests = run_pipeline(load_recipe(path), tmp / "runs", target=target, echo=lines.append)
    return tmp, manifests, lines


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory):
    """(tmp, manifests, lines): tiny_recipe()'s teacher, trained once per session in
    tmp/runs/tiny/teacher. Read it; copy it (seed_run) to build on it."""
    return _made_once(
        tmp_path_factory, "tiny-teacher", lambda tmp: _shared_run(tmp, None, "teacher")
    )


@pytest.fixture(scope="session")
def teacher_for(tmp_path_factory):
    """teacher_for(**sections) -> the run folder (runs/tiny) holding the teacher of
    tiny_recipe(**sections), trained once per session for each distinct set of the sections the
    teacher stage hashes. Copy it (seed_run) to build on it."""
    from pipelines.run.registry import STAGES

    made = {}

    def teacher(**sections) -> Path:
        recipe = tiny_recipe(**sections)
        own = {k: recipe[k] for k in STAGES["teacher"].sections if k in recipe}
        key = json.dumps(own, sort_keys=True)
        if key not in made:
            name = "teacher-" + hashlib.sha256(key.encode()).hexdigest()[:12]
            tmp, _, _ = _made_once(
                tmp_path_factory, name, lambda tmp: _shared_run(tmp, None, "teacher", **own)
            )
            made[key] = tmp / "runs" / "tiny"
        return made[key]

    return teacher


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory, tiny_teacher):
    """(tmp, manifests, lines): the tiny teacher distilled with SECTIONS' distill settings (half
    an epoch), in tmp/runs/tiny. Read it; copy it to build on it."""
    teacher_run = tiny_teacher[0] / "runs" / "tiny"
    return _made_once(
        tmp_path_factory,
        "tiny-student",
        lambda tmp: _shared_run(tmp, teacher_run, "distill", distill=SECTIONS["distill"]),
    )


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_student):
    """(tmp, recipe path, manifests): tiny_recipe(**SECTIONS) run through the bundle (the smallest
    run with a report and a bundle), in tmp/runs/tiny. Read it; copy it to change it."""
    student_run = tiny_student[0] / "runs" / "tiny"
    tmp, manifests, _ = _made_once(
        tmp_path_factory,
        "tiny-bundle",
        lambda tmp: _shared_run(tmp, student_run, "bundle", **SECTIONS),
    )
    return tmp, tmp / "recipe.yaml", manifests


@pytest.fixture
def recipe_file(tmp_path):
    def make(**sections) -> Path:
        return write_recipe(tmp_path / "recipe.yaml", tiny_recipe(**sections))

    return make


def kill_when(cmd: list[str], pattern, timeout: float = 300) -> None:
    """Start `cmd` in the project root and SIGKILL it once a file matching `pattern` (a
    (folder, glob) pair) exists; fails if the command finished before that."""
    import signal
    import subprocess
    import time

    folder, glob = pattern
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if list(folder.glob(glob)):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "training finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()


def reviews_csv(path: Path, rows: int = 300, seed: int = 0) -> Path:
    """A small labelled CSV as a newcomer brings it (id, review, sentiment: pos/neg)."""
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "review", "sentiment"])
        for i in range(rows):
            label = rng.choice(["pos", "neg"])
            word = rng.choice(["great", "lovely"] if label == "pos" else ["awful", "dull"])
            out.writerow(
                [i, f"the film was {word} and the plot {rng.choice(['ran', 'sat'])}", label]
            )
    return path

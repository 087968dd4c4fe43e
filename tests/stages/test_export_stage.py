import json
import subprocess
import sys

import numpy as np
import pytest

from pipelines.core.config import load_recipe
from pipelines.core.errors import StageFailedError
from pipelines.run.runner import run_pipeline
from tests.conftest import ROOT, seed_run, tiny_recipe, write_recipe


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_student):
    tmp = tmp_path_factory.mktemp("export")
    seed_run(tmp / "runs", tiny_student[0] / "runs" / "tiny", "teacher", "distill")
    raw = tiny_recipe(
        distill={"epochs": 0.5, "batch_size": 16}, export={"feature_extraction": True}
    )
    recipe = load_recipe(write_recipe(tmp / "recipe.yaml", raw))
    manifests = run_pipeline(recipe, tmp / "runs", target="export", echo=lambda _: None)
    return tmp, manifests


def test_export_stage_records_parity_for_plain_and_fused(exported):
    tmp, manifests = exported
    manifest = json.loads((tmp / "runs" / "tiny" / "export" / "manifest.json").read_text())
    exports = manifest["exports"]
    assert set(exports) == {"student-onnx", "student-onnx-O2", "teacher-onnx", "teacher-onnx-O2"}
    for name, record in exports.items():
        parity = record["parity"]
        assert parity["rows"] == 160 and parity["passed"] and parity["agreement"] >= 0.999, name
        assert parity["max_abs_diff"] <= (1e-4 if name.endswith("onnx") else 1e-3)
    assert exports["student-onnx-O2"]["fused_ops"]["Attention"] == 1  # one student layer, fused
    assert manifest["metrics"]["accuracy"] == pytest.approx(
        manifests["distill"]["metrics"]["accuracy"], abs=1e-9
    )


@pytest.mark.slow  # over ~10 s on 2 cores: make test-fast leaves it out
def test_embed_prints_the_same_cls_vector_from_torch_and_onnx(exported):
    tmp, _ = exported
    vectors = {}
    for artifact in ("student", "student-onnx"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipelines",
                "embed",
                str(tmp / "recipe.yaml"),
                "--artifact",
                artifact,
                "--text",
                "the film is not good",
                "--runs-dir",
                str(tmp / "runs"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        vectors[artifact] = np.array(json.loads(result.stdout.splitlines()[0]))
    a, b = vectors["student"], vectors["student-onnx"]
    assert a.shape == (32,) and float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) >= 0.9999


def test_parity_miss_fails_the_stage_without_a_manifest(exported, tmp_path, monkeypatch):
    import shutil

    from pipelines.stages import export as export_stage

    tmp, _ = exported
    for stage in ("teacher", "distill"):
        shutil.copytree(tmp / "runs" / "tiny" / stage, tmp_path / "runs" / "tiny" / stage)
    original = export_stage.onnx_logits
    monkeypatch.setattr(export_stage, "onnx_logits", lambda *a, **k: original(*a, **k) + 0.5)
    raw = tiny_recipe(
        distill={"epochs": 0.5, "batch_size": 16}, export={"feature_extraction": True}
    )
    recipe = load_recipe(write_recipe(tmp_path / "recipe.yaml", raw))
    with pytest.raises(
        StageFailedError,
        match=r"parity failed for student-onnx: max \|Δlogit\| 0\.5.* > atol 0\.0001",
    ):
        run_pipeline(recipe, tmp_path / "runs", target="export", echo=lambda _: None)
    assert not (tmp_path / "runs" / "tiny" / "export" / "manifest.json").exists()
    assert (
        tmp_path / "runs" / "tiny" / "distill" / "manifest.json"
    ).exists()  # earlier stages untouched


def test_o4_needs_cuda(tmp_path):
    from pipelines.core.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"export\.optimize: 'O4' converts to fp16.*export\.device: cuda"
    ):
        load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe(export={"optimize": "O4"})))

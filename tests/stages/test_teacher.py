import json

import pytest
import torch

from pipelines.core.config import load_recipe
from pipelines.core.errors import DistilleryError, UnsafeSourceError
from pipelines.run.runner import run_pipeline
from tests.conftest import tiny_recipe, write_recipe


def _run(tmp_path, overrides=(), stage="teacher", force=False, **sections):
    recipe = load_recipe(
        write_recipe(tmp_path / "recipe.yaml", tiny_recipe(**sections)), list(overrides)
    )
    lines = []
    manifests = run_pipeline(
        recipe, tmp_path / "runs", target=stage, force=force, echo=lines.append
    )
    return manifests, lines


@pytest.fixture(scope="module")
def trained(tiny_teacher):
    """One tiny teacher trained on the generated task (the session's, tests/conftest.py)."""
    tmp, manifests, lines = tiny_teacher
    return tmp, manifests["teacher"], lines


def test_teacher_learns_the_generated_task(trained):
    _, manifest, _ = trained
    assert manifest["metrics"]["accuracy"] >= 0.90
    assert manifest["training"]["global_step"] == 4 * 50  # 800 rows / 16 per batch, 4 epochs


def test_manifest_records_config_hash_versions_machine(trained):
    tmp, manifest, _ = trained
    on_disk = json.loads((tmp / "runs" / "tiny" / "teacher" / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["stage"] == "teacher" and len(on_disk["hash"]) == 64
    assert on_disk["config"]["teacher"]["epochs"] == 4.0
    assert 0.0 <= on_disk["metrics"]["accuracy"] <= 1.0 and isinstance(
        on_disk["metrics"]["accuracy"], float
    )
    assert on_disk["inputs"]["data"] and on_disk["seconds"] > 0
    assert on_disk["versions"]["torch"].startswith(torch.__version__.split("+")[0])
    assert on_disk["machine"]["cores"] >= 1 and on_disk["machine"]["cpu"]
    assert (tmp / "runs" / "tiny" / "teacher" / "log.txt").read_text().count("loss") > 3


def test_saved_teacher_reloads_with_the_same_accuracy(trained):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipelines.data.loading import load_task_data, tokenize
    from pipelines.train.evaluation import evaluate_model

    tmp, manifest, _ = trained
    folder = tmp / "runs" / "tiny" / "teacher"
    assert (folder / "model.safetensors").is_file() and not (folder / "checkpoints").exists()
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    recipe = load_recipe(tmp / "recipe.yaml")
    data = load_task_data(recipe)
    metrics, _ = evaluate_model(model, tokenize(data.eval, tokenizer, recipe), tokenizer)
    assert metrics["accuracy"] == pytest.approx(manifest["metrics"]["accuracy"])
    assert model.config.id2label == {0: "negative", 1: "positive"}


def test_same_config_is_skipped_and_force_reruns(tmp_path):
    first, _ = _run(tmp_path, teacher={"epochs": 0.2})
    second, lines = _run(tmp_path, teacher={"epochs": 0.2})
    assert second["teacher"]["hash"] == first["teacher"]["hash"]
    assert second["teacher"]["finished"] == first["teacher"]["finished"]
    assert lines[0].startswith("[teacher] skipped: already done with this config")
    _, lines = _run(tmp_path, force=True, teacher={"epochs": 0.2})
    assert lines[0].startswith("[teacher] the finished run is kept aside")
    assert lines[1].startswith("[teacher] running")
    changed, lines = _run(tmp_path, teacher={"epochs": 0.3})
    assert (
        lines[1].startswith("[teacher] running")
        and changed["teacher"]["hash"] != first["teacher"]["hash"]
    )


def test_cosmetic_keys_do_not_invalidate(tmp_path):
    _run(tmp_path, teacher={"epochs": 0.2})
    _, lines = _run(tmp_path, teacher={"epochs": 0.2}, train={"device": "cpu", "logging_steps": 3})
    assert lines[0].startswith("[teacher] skipped")


def test_finetuned_teacher_is_only_evaluated(trained, tmp_path):
    tmp, manifest, _ = trained
    folder = tmp / "runs" / "tiny" / "teacher"
    manifests, _ = _run(
        tmp_path, teacher={"init": "pretrained", "model": str(folder), "finetune": False}
    )
    again = manifests["teacher"]
    assert again["training"] == {}
    assert again["metrics"]["accuracy"] == pytest.approx(manifest["metrics"]["accuracy"])


def test_finetuned_teacher_with_wrong_label_count(trained, tmp_path):
    tmp, _, _ = trained
    folder = tmp / "runs" / "tiny" / "teacher"
    with pytest.raises(DistilleryError, match=r"classifier with 2 labels but task\.labels has 3"):
        _run(
            tmp_path,
            task={"labels": ["a", "b", "c"]},
            teacher={"init": "pretrained", "model": str(folder), "finetune": False},
        )


def test_pickle_only_checkpoint_is_refused(trained, tmp_path):
    from transformers import AutoModelForSequenceClassification

    tmp, _, _ = trained
    model = AutoModelForSequenceClassification.from_pretrained(tmp / "runs" / "tiny" / "teacher")
    folder = tmp_path / "pickled"
    model.save_pretrained(folder, safe_serialization=False)
    assert (folder / "pytorch_model.bin").is_file()
    with pytest.raises(
        UnsafeSourceError,
        match=r"only pickle weights \(pytorch_model\.bin\).*security\.allow_pickle: true",
    ):
        _run(tmp_path, teacher={"init": "pretrained", "model": str(folder)})


def test_remote_code_is_refused(trained, tmp_path):
    import shutil

    tmp, _, _ = trained
    folder = tmp_path / "remote"
    shutil.copytree(tmp / "runs" / "tiny" / "teacher", folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        UnsafeSourceError, match=r"ships its own model code.*security\.trust_remote_code: true"
    ):
        _run(tmp_path, teacher={"init": "pretrained", "model": str(folder)})


def test_cuda_requested_without_cuda_fails_before_work(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    with pytest.raises(
        DistilleryError, match=r"train\.device is 'cuda' but no CUDA device is available"
    ):
        _run(tmp_path, train={"device": "cuda"})
    assert not (tmp_path / "runs" / "tiny" / "teacher" / "manifest.json").exists()


def test_fused_adamw_is_an_opt_in_that_reaches_the_optimizer(tmp_path):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer

    from pipelines.train.settings import training_arguments

    def optimizer_for(optim):
        raw = tiny_recipe(train={"device": "cpu", "optim": optim} if optim else {"device": "cpu"})
        recipe = load_recipe(write_recipe(tmp_path / "r.yaml", raw))
        args = training_arguments(recipe, tmp_path / "out", recipe.teacher, train_rows=8)
        model = BertForSequenceClassification(
            BertConfig(
                vocab_size=20,
                hidden_size=16,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=16,
            )
        )
        return Trainer(model=model, args=args).create_optimizer()

    default, fused = optimizer_for(None), optimizer_for("adamw_torch_fused")
    assert isinstance(fused, torch.optim.AdamW) and fused.defaults["fused"] is True
    assert not default.defaults.get("fused")

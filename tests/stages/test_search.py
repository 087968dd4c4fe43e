"""Student search: the space, the survivors, the pick, and a tiny search end to end (resumed)."""

from __future__ import annotations

import json

import pytest
from transformers import BertConfig

from pipelines.core.config import SearchSpaceConfig, StudentConfig, load_recipe
from pipelines.core.errors import ConfigError, DistilleryError
from pipelines.run.runner import run_pipeline
from pipelines.search.select import pick, survivors, training_order
from pipelines.search.space import Candidate, candidates, layer_choice
from tests.conftest import seed_run, tiny_recipe, write_recipe

MINILM = BertConfig(
    num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536
)


def test_space_gives_every_distinct_build_for_the_teacher():
    space = SearchSpaceConfig(depths=[2, 3], widths=[384, 256], layer_choices=["uniform", "bottom"])
    found = {c.id: c for c in candidates(space, MINILM)}
    assert sorted(found) == sorted(
        f"L{d}-H{w}-F{4 * w}-{choice}"
        for d in (2, 3)
        for w in (384, 256)
        for choice in ("uniform", "bottom")
    )
    copied = found["L3-H384-F1536-uniform"]
    assert copied.init == "teacher_layers" and copied.layers == (0, 2, 4)
    assert copied.student_section() == {"init": "teacher_layers", "layers": [0, 2, 4]}
    cut = found["L2-H256-F1024-bottom"]
    assert cut.init == "prune" and cut.heads == 8 and cut.layers == (0, 1)
    assert cut.student_section()["config"]["intermediate_size"] == 1024
    assert layer_choice("uniform", 4, 6) == (0, 1, 3, 4)


def test_space_refuses_what_the_teacher_cannot_give():
    with pytest.raises(ConfigError, match="depths: 8 layers, but the teacher has 6"):
        candidates(SearchSpaceConfig(depths=[8]), MINILM)
    with pytest.raises(ConfigError, match="multiple of the head size 32"):
        candidates(SearchSpaceConfig(widths=[300]), MINILM)
    with pytest.raises(ConfigError, match="teacher_layers copies whole layers"):
        candidates(SearchSpaceConfig(widths=[256], init="teacher_layers"), MINILM)
    with pytest.raises(ConfigError, match="exceeds the teacher's intermediate size"):
        candidates(SearchSpaceConfig(ffn_ratios=[8.0]), MINILM)


def test_space_kinds_add_one_token_candidate_each_never_dominated():
    space = SearchSpaceConfig(
        depths=[2], layer_choices=["bottom"], kinds=["transformer", "cnn", "static"]
    )
    found = {c.id: c for c in candidates(space, MINILM)}
    assert list(found) == ["L2-H384-F1536-bottom", "cnn", "static"]
    cnn = found["cnn"]
    assert (cnn.kind, cnn.depth, cnn.width, cnn.layers) == ("cnn", 1, 128, ())
    section = cnn.student_section()
    assert section["init"] == "cnn" and section["tokens"]["kernel_sizes"] == [3, 4, 5]
    assert StudentConfig(**section).tokens.width == 128  # the distill stage builds the pick
    assert cnn.to_dict()["kind"] == "cnn"
    assert "kind" not in found["L2-H384-F1536-bottom"].to_dict()  # earlier build keys hold
    # a transformer larger and faster than the cnn does not drop it: kinds are not ordered
    big = found["L2-H384-F1536-bottom"]
    kept, dropped = survivors([(big, 1.0), (cnn, 2.0), (found["static"], 0.5)], budget_ms=None)
    assert [c.id for c, _ in kept] == ["static", "L2-H384-F1536-bottom", "cnn"] and not dropped
    only = candidates(SearchSpaceConfig(kinds=["bilstm"], tokens={"width": 999}), MINILM)
    assert [(c.id, c.width) for c in only] == [("bilstm", 384)]  # PCA keeps the teacher's width


def test_a_search_that_may_pick_a_token_student_refuses_what_it_cannot_train(tmp_path):
    kinds = {**SEARCH, "space": {**SEARCH["space"], "kinds": ["transformer", "cnn"]}}
    for distill, key in (
        ({"matches": ["hidden_mse"]}, "distill.matches"),
        ({"two_step": 0.5}, "distill.two_step"),
        ({"ablation": True}, "distill.ablation"),
    ):
        raw = tiny_recipe(search=kinds, distill=distill)
        with pytest.raises(ConfigError) as refused:
            load_recipe(write_recipe(tmp_path / "recipe.yaml", raw))
        assert (
            f": {key}: not supported with search.space.kinds ['cnn'] (the search trains them and "
            "may pick one): a token-vector student has no hidden states"
        ) in str(refused.value)
        assert "leave static, cnn and bilstm out of search.space.kinds" in str(refused.value)
    # the same keys with a transformer-only space, or the search off, are fine
    load_recipe(write_recipe(tmp_path / "ok.yaml", tiny_recipe(search=SEARCH, distill=distill)))
    off = {**kinds, "enabled": False}
    load_recipe(write_recipe(tmp_path / "off.yaml", tiny_recipe(search=off, distill=distill)))
    twice = {**SEARCH, "space": {**SEARCH["space"], "kinds": ["cnn", "cnn"]}}
    with pytest.raises(ConfigError, match=r"search.space.kinds: \['cnn', 'cnn'\] lists a kind"):
        load_recipe(write_recipe(tmp_path / "twice.yaml", tiny_recipe(search=twice)))


def _cand(depth, width, choice="uniform"):
    return Candidate(depth, width, width // 32, 4 * width, tuple(range(depth)), choice, "prune")


def test_survivors_drop_over_budget_and_dominated_keep_same_shape_alternatives():
    big, small, alt, slow_small = (
        _cand(3, 384),
        _cand(2, 256),
        _cand(2, 256, "bottom"),
        _cand(1, 256),
    )
    timed = [(big, 2.0), (small, 1.5), (alt, 1.4), (slow_small, 2.5)]
    kept, dropped = survivors(timed, budget_ms=None)
    assert [c.id for c, _ in kept] == [alt.id, small.id, big.id]  # fastest first
    assert dropped[slow_small.id].startswith("dominated by")  # others are larger and faster
    kept, dropped = survivors(timed, budget_ms=1.8)
    assert big.id in dropped and dropped[big.id].startswith("over budget: 2.000 ms > 1.8 ms")
    assert [c.id for c in training_order(kept, budget_ms=1.8)] == [
        small.id,
        alt.id,
    ]  # largest first


def test_pick_fastest_over_the_floor_or_most_accurate():
    rows = [
        {"id": "a", "latency_ms": 1.0, "accuracy": 0.80},
        {"id": "b", "latency_ms": 1.5, "accuracy": 0.87},
        {"id": "c", "latency_ms": 2.0, "accuracy": 0.89},
    ]
    assert pick(rows, 0.875, 0.5, None)[0]["id"] == "b"  # 0.87 is within 0.5 pt of the floor
    assert pick(rows, 0.875, 0.0, None)[0]["id"] == "c"
    chosen, why = pick(rows, 0.95, 0.0, None)
    assert chosen["id"] == "c" and why.startswith("no candidate reached the floor 0.9500")
    assert pick(rows[:2], 0.0, 0.0, budget_ms=1.6)[0]["id"] == "b"


SEARCH = {
    "enabled": True,
    "space": {
        "depths": [1, 2],
        "widths": [32, 16],
        "ffn_ratios": [2.0],
        "layer_choices": ["bottom"],
    },
    "max_trained": 4,
    "short_rows": 160,
    "short_epochs": 1.0,
    "threads": 1,
    "seq_len": 16,
    "rounds": 2,
    "min_runs": 3,
    "min_seconds": 0.05,
    "budget_ms": 1e6,  # every candidate is within it: every survivor is trained, the best picked
}


def _recipe(tmp_path, **search):
    raw = tiny_recipe(
        search={**SEARCH, **search},
        distill={"epochs": 0.5, "batch_size": 16},
    )
    return load_recipe(write_recipe(tmp_path / "recipe.yaml", raw))


@pytest.mark.slow  # three searches: four candidates trained and timed, then the pick distilled
def test_tiny_search_picks_the_best_trained_resumes_and_hands_the_pick_to_distill(
    tmp_path, tiny_teacher
):
    runs = seed_run(tmp_path / "runs", tiny_teacher[0] / "runs" / "tiny", "teacher")
    manifests = run_pipeline(_recipe(tmp_path), runs, "distill", echo=lambda _: None)
    found = manifests["search"]
    rows = {r["id"]: r for r in found["candidates"]}
    assert set(rows) == {
        "L1-H32-F64-bottom",
        "L2-H32-F64-bottom",
        "L1-H16-F32-bottom",
        "L2-H16-F32-bottom",
    }
    trained = [r for r in rows.values() if r["status"] == "trained"]
    assert trained and all(r["latency_ms"] > 0 and r["speedup_vs_teacher"] > 0 for r in trained)
    for r in rows.values():  # each candidate is either trained or dropped with its reason
        assert r["status"] == "trained" or r["status"].startswith("dominated by")
    best = max(trained, key=lambda r: (r["accuracy"], -r["latency_ms"]))
    assert found["chosen"]["id"] == best["id"]  # budget mode: the most accurate one
    assert found["chosen"]["why"] == "most accurate within 1e+06 ms"
    table = (runs / "tiny" / "search" / "candidates.md").read_text()
    assert "**chosen** · trained" in table and table.count("\n") == len(rows) + 2
    assert (runs / "tiny" / "search" / "candidates.png").stat().st_size > 1000

    # the distill stage trained the pick, not the recipe's student
    student = json.loads((runs / "tiny" / "distill" / "config.json").read_text())
    chosen = found["chosen"]
    assert student["num_hidden_layers"] == chosen["depth"]
    assert student["hidden_size"] == chosen["width"]
    assert manifests["distill"]["student"]["search_pick"] == chosen["id"]

    # a killed search: its manifest and one short run lost; the rest is reused as it was
    folder = runs / "tiny" / "search"
    (folder / "manifest.json").unlink()
    redo = trained[0]["id"]
    (folder / "candidates" / redo / "short.json").unlink()
    kept = {
        r["id"]: (folder / "candidates" / r["id"] / "short.json").stat().st_mtime_ns
        for r in trained[1:]
    }
    built = (folder / "candidates" / redo / "built.json").stat().st_mtime_ns
    latency = (folder / "latency.json").stat().st_mtime_ns
    again = run_pipeline(_recipe(tmp_path), runs, "search", echo=lambda _: None)["search"]
    assert (folder / "candidates" / redo / "short.json").is_file()
    for cid, mtime in kept.items():
        assert (folder / "candidates" / cid / "short.json").stat().st_mtime_ns == mtime
    assert (folder / "candidates" / redo / "built.json").stat().st_mtime_ns == built
    assert (folder / "latency.json").stat().st_mtime_ns == latency
    assert again["chosen"]["id"] == chosen["id"]  # the same seeded short run, the same pick
    # a new slack (a selection setting) reuses every timing and short run
    run_pipeline(_recipe(tmp_path, slack_points=3.0), runs, "search", echo=lambda _: None)
    assert (folder / "latency.json").stat().st_mtime_ns == latency
    for cid, mtime in kept.items():
        assert (folder / "candidates" / cid / "short.json").stat().st_mtime_ns == mtime


@pytest.mark.slow  # two candidates built, timed and trained briefly
def test_a_cnn_candidate_is_built_timed_trained_and_ranked_beside_a_transformer(
    tmp_path, tiny_teacher
):
    runs = seed_run(tmp_path / "runs", tiny_teacher[0] / "runs" / "tiny", "teacher")
    space = {
        "depths": [1],
        "ffn_ratios": [2.0],  # the teacher's 64 / 32: its layer is copied
        "layer_choices": ["bottom"],
        "kinds": ["transformer", "cnn"],
        "tokens": {"width": 16, "filters": 8, "kernel_sizes": [2, 3]},
    }
    found = run_pipeline(_recipe(tmp_path, space=space), runs, "search", echo=lambda _: None)
    found = found["search"]
    rows = {r["id"]: r for r in found["candidates"]}
    assert set(rows) == {"L1-H32-F64-bottom", "cnn"}
    cnn = rows["cnn"]
    assert (cnn["kind"], cnn["init"], cnn["status"]) == ("cnn", "cnn", "trained")
    assert cnn["latency_ms"] > 0 and cnn["speedup_vs_teacher"] > 0 and cnn["int8_mb"] > 0
    short = json.loads((runs / "tiny" / "search" / "candidates" / "cnn" / "short.json").read_text())
    assert short["steps"] == 10 and cnn["accuracy"] == short["int8_accuracy"]  # 160 rows / 16
    config = json.loads(
        (runs / "tiny" / "search" / "candidates" / "cnn" / "model" / "config.json").read_text()
    )  # noqa: E501
    assert config["student_kind"] == "cnn" and config["kernel_sizes"] == [2, 3]
    assert cnn["parameters"] < rows["L1-H32-F64-bottom"]["parameters"]
    best = max(rows.values(), key=lambda r: (r["accuracy"], -r["latency_ms"]))
    assert found["chosen"]["id"] == best["id"]  # budget mode: the most accurate of both kinds
    table = (runs / "tiny" / "search" / "candidates.md").read_text()
    line = next(x for x in table.splitlines() if x.startswith("| cnn |"))
    assert line.startswith("| cnn | cnn | – | cnn | ")
    assert f"| {cnn['latency_ms']:.3f} |" in line and f"| {cnn['accuracy']:.4f} |" in line
    assert "| L1-H32-F64-bottom | transformer | [0] | teacher_layers |" in table


@pytest.mark.slow  # over ~10 s on 2 cores: make test-fast leaves it out
def test_budget_no_candidate_can_meet_fails_with_every_reason(tmp_path, tiny_teacher):
    seed_run(tmp_path / "runs", tiny_teacher[0] / "runs" / "tiny", "teacher")
    with pytest.raises(DistilleryError, match=r"no candidate is left after timing: .*over budget"):  # noqa: E501
        run_pipeline(
            _recipe(tmp_path, budget_ms=1e-6), tmp_path / "runs", "search", echo=lambda _: None
        )


def test_a_timing_shape_the_teacher_cannot_take_is_refused_before_training(tmp_path):
    with pytest.raises(
        ConfigError, match=r"search.seq_len: 128 tokens, but the teacher takes at most 64"
    ):
        run_pipeline(
            _recipe(tmp_path, seq_len=128), tmp_path / "runs", "search", echo=lambda _: None
        )
    assert not (tmp_path / "runs" / "tiny" / "teacher" / "manifest.json").exists()


def test_search_stage_only_runs_when_enabled(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path / "recipe.yaml", tiny_recipe()))
    with pytest.raises(DistilleryError, match="does not enable it"):
        run_pipeline(recipe, tmp_path / "runs", "search", dry_run=True, echo=lambda _: None)
    lines = []
    run_pipeline(recipe, tmp_path / "runs", "distill", dry_run=True, echo=lines.append)
    assert [line.split("]")[0] for line in lines] == ["[teacher", "[distill"]


def test_openvino_candidates_are_built_as_ir_and_timed(tmp_path):
    pytest.importorskip("openvino", reason="the openvino backend needs the [openvino] extra")
    import datasets

    from pipelines.search.measure import build_candidate, time_candidates
    from tests.conftest import tiny_bert

    teacher, tokenizer = tiny_bert(tmp_path / "teacher", ["good", "bad", "film", "plot"])
    teacher.save_pretrained(tmp_path / "teacher", safe_serialization=True)
    raw = tiny_recipe(search={**SEARCH, "backend": "openvino", "rounds": 1})
    recipe = load_recipe(write_recipe(tmp_path / "recipe.yaml", raw))
    texts = ["good film", "bad plot", "good plot", "bad film"] * 8
    train = datasets.Dataset.from_dict(dict(tokenizer(texts, truncation=True))).add_column(
        "labels", [0, 1] * 16
    )
    space = candidates(recipe.search.space, teacher.config)
    cand = next(c for c in space if c.id == "L1-H16-F32-bottom")  # a pruned one
    record = build_candidate(cand, tmp_path / cand.id, "k1", recipe, teacher, tokenizer, train)
    assert record["key"] == "k1" and record["init"] == "prune"
    assert (tmp_path / cand.id / "int8" / "model.xml").is_file()
    again = build_candidate(cand, tmp_path / cand.id, "k1", recipe, teacher, tokenizer, train)
    assert again == record  # built.json with the same key: reused, not rebuilt
    rows = time_candidates({cand.id: tmp_path / cand.id}, tmp_path / "teacher", recipe.search)
    assert rows[cand.id]["backend"] == "openvino" and rows[cand.id]["p50_ms"] > 0
    assert rows["teacher"]["backend"] == "torch" and rows["teacher"]["p50_ms"] > 0

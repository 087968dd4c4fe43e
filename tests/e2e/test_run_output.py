"""What `distillery run` prints (issues #29 and #28): a progress line for each long step, the
closing summary with each stage's time and peak memory, and no third-party line on stderr."""

from __future__ import annotations

import json

import pytest

from pipelines.cli import main
from pipelines.core import progress
from pipelines.core.usage import peak_text
from tests.conftest import SECTIONS, tiny_recipe, write_recipe

# A progress line each of these steps must show (QUIET_FOR is 0 here, so every step shows).
STEPS = [
    "[teacher] training: ",
    "[teacher] evaluate teacher: ",
    "[distill] teacher logits: ",
    "[distill] training: ",
    "[export] parity student: ",
    "[quantize] quantize student: ",
    "[bundle] check predict.py: ",
]


@pytest.mark.slow
def test_a_run_shows_each_steps_progress_and_ends_with_its_costs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DISTILLERY_PROGRESS", "1")
    monkeypatch.setattr(progress, "QUIET_FOR", 0)
    sections = {**SECTIONS, "data": {"synthetic_rows": 240}, "teacher": {"epochs": 1}}
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_recipe(**sections))
    try:
        code = main(["run", str(recipe), "--runs-dir", str(tmp_path / "runs")])
    finally:
        progress.hide()
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    for step in STEPS:
        assert any(line.startswith(step) for line in lines), (step, lines)
    # every stderr line is ours: a step's progress ("[stage] ...") or the pipeline's own warning
    foreign = [x for x in lines if not x.startswith(("[", "WARNING distillery:"))]
    assert not foreign, foreign
    summary = out[out.index("time and peak memory by stage:") :].splitlines()
    run = tmp_path / "runs" / "tiny"
    for stage in ("teacher", "distill", "export", "quantize", "bench", "report", "bundle"):
        usage = json.loads((run / stage / "manifest.json").read_text())["usage"]
        assert usage["peak_rss_bytes"] > 0 and usage["seconds"] > 0
        row = next(x for x in summary if x.strip().startswith(stage))
        assert f"peak {peak_text(usage)}" in row
    assert any(x.startswith("done in ") for x in summary)
    assert "recommended:" in out and "bundle:" in out

"""The closing summary of a full run: recommendation, report and bundle paths, total time."""

from pathlib import Path

import pytest

from pipelines.run.summary import closing_summary, duration


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0 s"), (59.6, "1 min 00 s"), (185, "3 min 05 s"), (7620, "2 h 07 min")],
)
def test_duration(seconds, shown):
    assert duration(seconds) == shown


def test_summary_names_the_pick_the_report_and_the_bundle():
    run = Path("runs/my run")
    manifests = {
        "report": {
            "recommended": "student-int8-dynamic",
            "reason": "fastest within 1 point of the teacher",
            "artifacts": {"readme": "README.md"},
        },
        "bundle": {"metrics": {"artifact": "student-int8-dynamic"}},
    }
    lines = closing_summary(manifests, run, 185.2)
    text = "\n".join(lines)
    assert lines[1] == "done in 3 min 05 s: runs/my run"
    assert "recommended: student-int8-dynamic (fastest within 1 point of the teacher)" in text
    assert "report:      runs/my run/report/README.md" in text
    assert "bundle:      runs/my run/bundle (student-int8-dynamic)" in text
    assert "distillery bundle --verify 'runs/my run/bundle'" in text  # quoted for the shell


def test_summary_says_why_nothing_is_recommended_and_omits_what_did_not_run():
    manifests = {"report": {"recommended": None, "withheld": "no artifact passed the gate"}}
    text = "\n".join(closing_summary(manifests, Path("runs/x"), 3))
    assert "no recommendation: no artifact passed the gate" in text
    assert "recommended:" not in text and "bundle" not in text

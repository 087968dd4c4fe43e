"""The `search` section: which candidate students the search stage times and distils, and how
it picks one."""

from typing import Literal

from distill.token_students import TOKEN_KINDS
from pipelines.core.config.model_keys import TokenShape
from pipelines.core.errors import ConfigError, shown
from pipelines.core.schema import Bool, Float, Int, Section, checks, f, names

LAYER_CHOICES = ("uniform", "bottom")  # student search: pipelines/search/space.py
SEARCH_KINDS = ("transformer", *TOKEN_KINDS)  # search.space.kinds


class SearchSpaceConfig(Section):
    """Candidate students (pipelines/search/space.py): every combination of these."""

    depths: list[Int] = f([2, 3, 4], min=1, max=48, nonempty=True, help="student layers")
    widths: list[Int] | None = f(
        None,
        min=8,
        nonempty=True,
        help="hidden sizes; null = the teacher's only (then layers can be copied)",
    )
    head_size: Int | None = f(None, min=8, help="width per head; null = the teacher's")
    ffn_ratios: list[Float] = f(
        [4.0], min=0.25, max=16.0, nonempty=True, help="intermediate size ÷ width"
    )
    layer_choices: list[names(*LAYER_CHOICES)] = f(
        ["uniform", "bottom"],
        nonempty=True,
        help="teacher layers each student takes: uniform (evenly spaced from 0) or bottom",
    )
    init: Literal["auto", "teacher_layers", "prune"] = f(
        "auto",
        help="auto: copy teacher layers when the shape is the teacher's, else cut (prune) them",
    )
    kinds: list[names(*SEARCH_KINDS)] = f(
        ["transformer"],
        nonempty=True,
        hash="when_set",
        help="kinds of student among the candidates: transformer (the keys above), and one "
        "static, cnn or bilstm candidate each (shaped by search.space.tokens)",
    )
    tokens: TokenShape = f(
        TokenShape,
        hash="when_set",
        help="shape of the static, cnn and bilstm candidates, as student.tokens",
    )

    @checks
    def check(self) -> None:
        if len(set(self.kinds)) != len(self.kinds):
            raise ConfigError(
                f"search.space.kinds: {shown(self.kinds)} lists a kind twice; list each once, "
                "e.g. [transformer, cnn]."
            )


class SearchConfig(Section):
    """Student search (`distillery search`): the fastest student over an accuracy floor, or the
    most accurate one under a latency budget. Off unless enabled."""

    enabled: Bool = f(False, help="run the search stage; its pick becomes the run's student")
    floor: Float = f(0.99, min=0.0, max=1.0, help="accuracy floor, as a share of the teacher's")
    budget_ms: Float | None = f(
        None, min=0.0, help="latency budget (p50 ms); set = most accurate under it, not floor"
    )
    batch_size: Int = f(1, min=1, max=4096, help="latency measured at this batch size")
    seq_len: Int = f(128, min=1, max=4096, help="... and this sequence length")
    threads: Int = f(2, min=1, max=1024, help="... with this many threads")
    backend: Literal["onnxruntime", "openvino"] = f(
        "onnxruntime", help="deployment backend timed: ORT dynamic int8 or OpenVINO int8"
    )
    space: SearchSpaceConfig = f(SearchSpaceConfig, help="the candidates")
    max_trained: Int = f(4, min=1, max=100, help="candidates given the short distillation, at most")
    short_rows: Int = f(20000, min=16, help="training rows of the short distillation")
    short_epochs: Float = f(1.0, min=0.01, max=100.0, help="epochs of the short distillation")
    slack_points: Float = f(
        0.5,
        min=0.0,
        max=100.0,
        help="a short run within this many points of the floor counts as meeting it (the full "
        "run trains longer)",
    )
    rounds: Int = f(3, min=1, max=20, help="interleaved latency rounds")
    min_runs: Int = f(30, min=1, help="timed runs per candidate, at least")
    min_seconds: Float = f(1.0, min=0.0, help="timed seconds per candidate, at least")

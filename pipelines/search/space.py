"""The candidate students of a `search.space`: every depth × width × FFN ratio × layer choice.

Each candidate is a `student` recipe section the distill stage can build unchanged: teacher
layers copied (`init: teacher_layers`) when it has the teacher's width and FFN, otherwise a
smaller BERT cut from the teacher's layers (`init: config, init_weights: prune`). Imports nothing
heavy: `distillery validate` lists the candidates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pipelines.core.errors import ConfigError


@dataclass(frozen=True)
class Candidate:
    depth: int
    width: int
    heads: int
    ffn: int
    layers: tuple[int, ...]  # the teacher layer each student layer is copied or cut from
    choice: str  # uniform | bottom
    init: str  # teacher_layers | prune

    @property
    def id(self) -> str:
        return f"L{self.depth}-H{self.width}-F{self.ffn}-{self.choice}"

    def covers(self, other: Candidate) -> bool:
        """At least as large as `other` in every dimension (so, presumably, as accurate)."""
        return self.depth >= other.depth and self.width >= other.width and self.ffn >= other.ffn

    def student_section(self) -> dict[str, Any]:
        """The recipe's `student` section that builds this candidate."""
        if self.init == "teacher_layers":
            return {"init": "teacher_layers", "layers": list(self.layers)}
        return {
            "init": "config",
            "init_weights": "prune",
            "layers": list(self.layers),
            "config": {
                "num_hidden_layers": self.depth,
                "hidden_size": self.width,
                "num_attention_heads": self.heads,
                "intermediate_size": self.ffn,
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **asdict(self), "layers": list(self.layers)}


def layer_choice(choice: str, depth: int, n_teacher: int) -> tuple[int, ...]:
    """uniform: evenly spaced from layer 0 ([0, 2, 4] for 3 of 6); bottom: the first `depth`
    (dropping the top layers loses least when fine-tuning, Sajjad et al. 2020)."""
    if choice == "bottom":
        return tuple(range(depth))
    return tuple(i * n_teacher // depth for i in range(depth))


def candidates(space, teacher_config) -> list[Candidate]:
    """Every candidate of `space` for this teacher; ConfigError for a shape it cannot give."""
    t = teacher_config
    t_head = t.hidden_size // t.num_attention_heads
    t_ffn = getattr(t, "intermediate_size", None) or t.hidden_dim  # DistilBERT: hidden_dim
    head = space.head_size or t_head
    widths = space.widths or [t.hidden_size]
    out: dict[str, Candidate] = {}
    for depth in space.depths:
        if depth > t.num_hidden_layers:
            raise ConfigError(
                f"search.space.depths: {depth} layers, but the teacher has "
                f"{t.num_hidden_layers}; students are copied or cut from its layers"
            )
        for width in widths:
            if width > t.hidden_size or width % head:
                raise ConfigError(
                    f"search.space.widths: {width} must be at most the teacher's "
                    f"{t.hidden_size} and a multiple of the head size {head}"
                )
            for ratio in space.ffn_ratios:
                ffn = int(round(ratio * width))
                if ffn > t_ffn:
                    raise ConfigError(
                        f"search.space.ffn_ratios: {ratio} × {width} = {ffn} exceeds the "
                        f"teacher's intermediate size {t_ffn}"
                    )
                same_shape = width == t.hidden_size and ffn == t_ffn
                init = space.init if space.init != "auto" else None
                init = init or ("teacher_layers" if same_shape else "prune")
                if init == "teacher_layers" and not same_shape:
                    raise ConfigError(
                        f"search.space.init: teacher_layers copies whole layers, so width {width} "
                        f"/ FFN {ffn} must be the teacher's ({t.hidden_size} / "
                        f"{t_ffn}); use init: auto or prune"
                    )
                if init == "prune" and head != t_head:
                    raise ConfigError(
                        f"search.space.head_size: pruning keeps whole heads of {t_head}; "
                        f"{head} needs init: teacher_layers (or leave head_size unset)"
                    )
                for choice in space.layer_choices:
                    layers = layer_choice(choice, depth, t.num_hidden_layers)
                    c = Candidate(depth, width, width // head, ffn, layers, choice, init)
                    out.setdefault(f"{depth}-{width}-{ffn}-{layers}", c)  # one per distinct build
    return list(out.values())

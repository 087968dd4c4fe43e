"""The candidate students of a `search.space`: every depth × width × FFN ratio × layer choice,
and one candidate per token-vector kind the space lists (`search.space.kinds`).

Each candidate is a `student` recipe section the distill stage can build unchanged: teacher
layers copied (`init: teacher_layers`) when it has the teacher's width and FFN, otherwise a
smaller BERT cut from the teacher's layers (`init: config, init_weights: prune`); a static, cnn
or bilstm student shaped by `search.space.tokens` (`init: <kind>`). Imports nothing heavy:
`distillery validate` lists the candidates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from distill.token_students import TOKEN_KINDS
from pipelines.core.errors import ConfigError

TRANSFORMER = "transformer"  # the kind of every depth × width candidate


@dataclass(frozen=True)
class Candidate:
    depth: int
    width: int
    heads: int
    ffn: int
    layers: tuple[int, ...]  # the teacher layer each student layer is copied or cut from
    choice: str  # uniform | bottom ("" for a token kind)
    init: str  # teacher_layers | prune | a token kind
    kind: str = TRANSFORMER  # transformer | static | cnn | bilstm
    tokens: dict[str, Any] | None = field(default=None, compare=False)  # a token kind's shape

    @property
    def id(self) -> str:
        if self.kind != TRANSFORMER:
            return self.kind
        return f"L{self.depth}-H{self.width}-F{self.ffn}-{self.choice}"

    def covers(self, other: Candidate) -> bool:
        """At least as large as `other` in every dimension (so, presumably, as accurate); two
        kinds are not ordered by size, so a token kind neither covers nor is covered."""
        if self.kind != TRANSFORMER or other.kind != TRANSFORMER:
            return False
        return self.depth >= other.depth and self.width >= other.width and self.ffn >= other.ffn

    def student_section(self) -> dict[str, Any]:
        """The recipe's `student` section that builds this candidate."""
        if self.kind != TRANSFORMER:
            return {"init": self.kind, "tokens": dict(self.tokens or {})}
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
        out = {"id": self.id, **asdict(self), "layers": list(self.layers)}
        if self.kind == TRANSFORMER:  # as before the kinds: earlier searches' build keys hold
            del out["kind"], out["tokens"]
        return out


def layer_choice(choice: str, depth: int, n_teacher: int) -> tuple[int, ...]:
    """uniform: evenly spaced from layer 0 ([0, 2, 4] for 3 of 6); bottom: the first `depth`
    (dropping the top layers loses least when fine-tuning, Sajjad et al. 2020)."""
    if choice == "bottom":
        return tuple(range(depth))
    return tuple(i * n_teacher // depth for i in range(depth))


def candidates(space, teacher_config) -> list[Candidate]:
    """Every candidate of `space` for this teacher; ConfigError for a shape it cannot give."""
    out = transformers(space, teacher_config) if TRANSFORMER in space.kinds else []
    for kind in (k for k in space.kinds if k in TOKEN_KINDS):
        tokens = space.tokens.model_dump()
        width = min(tokens["width"], teacher_config.hidden_size)  # PCA keeps at most the teacher's
        depth = 0 if kind == "static" else 1  # layers between the vectors and the pooling
        out.append(Candidate(depth, width, 0, 0, (), "", kind, kind, tokens))
    return out


def transformers(space, teacher_config) -> list[Candidate]:
    """The transformer candidates: every depth × width × FFN ratio × layer choice."""
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

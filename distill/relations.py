"""MiniLM self-attention relations (Wang et al. 2020, 2021): what the query, key and value
projections of each block produce, captured while the model runs.

transformers returns hidden states and attention probabilities but not Q/K/V, so forward hooks on
each block's `attention.self.{query,key,value}` Linear modules read them: this keeps the models
unmodified (their own forward, any attention kernel) instead of copying attention code per family.
The relation itself (scaled dot-product of a projection with itself, per relation head) is
computed in `distill.losses.relation_kl`.
"""

from __future__ import annotations

from operator import attrgetter

import torch

from modelkit.errors import InputError
from modelkit.families import family_of

PROJECTIONS_BY_FEATURE = {"query": "query", "key": "key", "value": "value"}


def attention_blocks(model) -> list[torch.nn.Module]:
    """The self-attention module of each transformer block, in order."""
    family = family_of(model.config, "relation matches", type(model).__name__)
    layers = attrgetter(family.layers_attr)(model.base_model)
    blocks = []
    for index, layer in enumerate(layers):
        block = getattr(getattr(layer, "attention", None), "self", None)
        if block is None or not all(hasattr(block, p) for p in PROJECTIONS_BY_FEATURE.values()):
            raise InputError(
                f"relation matches: block {index} of {type(model).__name__} has no "
                "attention.self.query/key/value; use hidden or attention matches for this model"
            )
        blocks.append(block)
    return blocks


class RelationCapture:
    """Forward hooks that keep the latest output of the chosen projections of every block.

    `take()` returns {feature: [per-layer tensor [batch, seq, width]]} and forgets them, so a
    batch's tensors (and their graphs) are not held past the loss that reads them.
    """

    def __init__(self, model, features: set[str]):
        self.features = sorted(features)
        blocks = attention_blocks(model)
        self._latest: dict[str, list[torch.Tensor | None]] = {
            f: [None] * len(blocks) for f in self.features
        }
        self._handles = []
        for index, block in enumerate(blocks):
            for feature in self.features:
                module = getattr(block, PROJECTIONS_BY_FEATURE[feature])
                self._handles.append(module.register_forward_hook(self._keep(feature, index)))

    def _keep(self, feature: str, index: int):
        def hook(_module, _inputs, output):
            self._latest[feature][index] = output

        return hook

    def take(self) -> dict[str, tuple[torch.Tensor, ...]]:
        taken = {}
        for feature, tensors in self._latest.items():
            if any(t is None for t in tensors):
                raise RuntimeError(f"relation capture: no {feature} output since the last take()")
            taken[feature] = tuple(t.float() for t in tensors)
            self._latest[feature] = [None] * len(tensors)
        return taken

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def relation_heads(width_s: int, width_t: int, most: int = 12) -> int:
    """Relation heads shared by student and teacher: the largest count ≤ `most` that divides both
    widths (MiniLMv2 splits both into the same number of heads so widths may differ)."""
    import math

    common = math.gcd(width_s, width_t)
    return max(h for h in range(1, most + 1) if common % h == 0)

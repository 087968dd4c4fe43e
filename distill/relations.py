"""MiniLM self-attention relations (Wang et al. 2020, 2021): what the query, key and value
projections of each block produce, captured while the model runs.

transformers returns hidden states and attention probabilities but not Q/K/V, so forward hooks on
each block's query/key/value Linear modules (named per family in `modelkit.families`) read them: this keeps the models
unmodified (their own forward, any attention kernel) instead of copying attention code per family.
The relation itself (scaled dot-product of a projection with itself, per relation head) is
computed in `distill.losses.relation_kl`.
"""

from __future__ import annotations

from operator import attrgetter

import torch

from modelkit.errors import InputError
from modelkit.families import encoder_layers, family_of

FEATURES = ("query", "key", "value")  # in the order of `Family.projections`


def projection_modules(model) -> list[dict[str, torch.nn.Module]]:
    """{feature: its projection Linear} for each transformer block, in order (the names per
    family are `modelkit.families.Family.projections`)."""
    family = family_of(model.config, "relation matches", type(model).__name__)
    blocks = []
    for index, layer in enumerate(encoder_layers(model)):
        try:
            blocks.append(
                {
                    f: attrgetter(path)(layer)
                    for f, path in zip(FEATURES, family.projections, strict=True)
                }
            )
        except AttributeError:
            raise InputError(
                f"relation matches: block {index} of {type(model).__name__} has no "
                f"{'/'.join(family.projections)}; use hidden or attention matches for this model"
            ) from None
    return blocks


class RelationCapture:
    """Forward hooks that keep, per block, the first output of each chosen projection in that
    block's latest forward.

    The first, not the last: DeBERTa-v3 (`share_att_key`) runs its query/key projections a second
    time inside the block, on the relative-position embeddings; that later output is not the
    tokens'. A pre-hook on each block clears its slots, so every forward starts fresh.
    `take()` returns {feature: [per-layer tensor [batch, seq, width]]} and forgets them, so a
    batch's tensors (and their graphs) are not held past the loss that reads them.
    """

    def __init__(self, model, features: set[str]):
        self.features = sorted(features)
        blocks = projection_modules(model)
        self._latest: dict[str, list[torch.Tensor | None]] = {
            f: [None] * len(blocks) for f in self.features
        }
        self._handles = []
        for index, (layer, block) in enumerate(zip(encoder_layers(model), blocks, strict=True)):
            self._handles.append(layer.register_forward_pre_hook(self._clear(index)))
            for feature in self.features:
                module = block[feature]
                self._handles.append(module.register_forward_hook(self._keep(feature, index)))

    def _clear(self, index: int):
        def hook(_module, _inputs):
            for tensors in self._latest.values():
                tensors[index] = None

        return hook

    def _keep(self, feature: str, index: int):
        def hook(_module, _inputs, output):
            if self._latest[feature][index] is None:
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

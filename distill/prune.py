"""A narrower, shallower student cut out of the teacher (`student.init_weights: prune`).

Width pruning as in NVIDIA's Minitron (Muralidharan et al., 2024, "Compact Language Models via
Pruning and Knowledge Distillation"): run the teacher on a few hundred training rows, rank what
it actually uses, and keep the most active parts:

- hidden channels: mean |LayerNorm output| per channel, summed over every LayerNorm of the
  teacher (embeddings and each layer), so one channel set serves the whole residual stream;
- attention heads: mean L2 norm of each head's context vector (the input of the attention
  output projection), per layer;
- feed-forward neurons: mean |activation| after the GELU, per layer.

Padding tokens are left out of every mean. The student's layer i is cut from teacher layer
`layers[i]`; indices are kept in their original order, so cutting nothing is the identity.
Whole heads are kept, so the student's head width must equal the teacher's
(hidden_size / num_attention_heads). A LayerNorm over fewer channels normalises differently;
distillation repairs that, which is why this is an initialisation, not a compressed model.

Written here because no maintained library does it for BERT encoders: torch.nn.utils.prune only
masks weights (same shapes), and the structured pruners of NNCF / Neural Compressor prune inside
their own training loops rather than emit a smaller HF model.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable

import torch

from distill.student import check_layer_count, check_teacher_layers
from modelkit.errors import InputError
from modelkit.families import FAMILIES

LAYER_KEY = re.compile(r"^bert\.encoder\.layer\.(\d+)\.(.+)$")


def head_size(config) -> int:
    return config.hidden_size // config.num_attention_heads


def check_prunable(t, shape, layers: list[int]) -> None:
    """ValueError naming the key and the allowed values when `shape` cannot be cut from a teacher
    with config `t` (checked before the teacher trains, and again when the student is cut)."""
    model_type = getattr(t, "model_type", None)
    if model_type not in FAMILIES or not FAMILIES[model_type].prunable:
        prunable = [name for name, family in FAMILIES.items() if family.prunable]
        raise InputError(
            f"student.init_weights 'prune' cuts by BERT's parameter names; this teacher is "
            f"'{model_type or '?'}' (prunable model types: {', '.join(prunable)}). Use "
            "init_weights: random, or student.init: teacher_layers (every family)."
        )
    limits = {
        "hidden_size": t.hidden_size,
        "num_attention_heads": t.num_attention_heads,
        "intermediate_size": t.intermediate_size,
        "num_hidden_layers": t.num_hidden_layers,
    }
    for key, most in limits.items():
        if getattr(shape, key) > most:
            raise InputError(
                f"student.config.{key}: {getattr(shape, key)} is larger than the teacher's {most}; "
                f"pruning can only keep what the teacher has (at most {most})."
            )
    t_head = head_size(t)
    if shape.hidden_size != shape.num_attention_heads * t_head:
        raise InputError(
            f"student.config.num_attention_heads: pruning keeps whole teacher heads of {t_head} "
            f"dimensions, so hidden_size {shape.hidden_size} needs "
            f"{shape.hidden_size / t_head:g} heads (hidden_size = heads x {t_head}); got "
            f"{shape.num_attention_heads}."
        )
    check_layer_count(layers, shape.num_hidden_layers)
    check_teacher_layers(layers, t.num_hidden_layers)


@torch.no_grad()
def importance(teacher, batches: Iterable[dict]) -> dict:
    """Activation importance of channels, heads (per layer) and neurons (per layer)."""
    t = teacher.config
    bert = teacher.bert
    n_layers, heads, t_head = t.num_hidden_layers, t.num_attention_heads, head_size(t)
    scores = {
        "channels": torch.zeros(t.hidden_size, dtype=torch.float64),
        "heads": torch.zeros(n_layers, heads, dtype=torch.float64),
        "neurons": torch.zeros(n_layers, t.intermediate_size, dtype=torch.float64),
    }
    state: dict = {"mask": None}

    def masked_sum(values: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (D,), padding left out
        mask = state["mask"].to(values.dtype).unsqueeze(-1)
        return (values * mask).sum(dim=(0, 1)).double().cpu()

    def on_layernorm(_module, _inputs, output):
        scores["channels"].add_(masked_sum(output.abs()))

    def on_context(index):
        def hook(_module, inputs):
            context = inputs[0]
            per_head = context.reshape(*context.shape[:2], heads, t_head).norm(dim=-1)
            scores["heads"][index].add_(masked_sum(per_head))

        return hook

    def on_activation(index):
        def hook(_module, inputs):
            scores["neurons"][index].add_(masked_sum(inputs[0].abs()))

        return hook

    handles = [bert.embeddings.LayerNorm.register_forward_hook(on_layernorm)]
    for i, layer in enumerate(bert.encoder.layer):
        handles += [
            layer.attention.output.LayerNorm.register_forward_hook(on_layernorm),
            layer.output.LayerNorm.register_forward_hook(on_layernorm),
            layer.attention.output.dense.register_forward_pre_hook(on_context(i)),
            layer.output.dense.register_forward_pre_hook(on_activation(i)),
        ]
    was_training = teacher.training
    teacher.eval()
    device = next(teacher.parameters()).device
    try:
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
            state["mask"] = batch.get("attention_mask", torch.ones_like(batch["input_ids"]))
            teacher(**batch)
    finally:
        for handle in handles:
            handle.remove()
        teacher.train(was_training)
    return scores


def top(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest values, in increasing index order (ties: the lower index)."""
    order = torch.argsort(-values, stable=True)[:k]
    return torch.sort(order).values


def prune_teacher(teacher, shape, layers: list[int], batches: Iterable[dict], seed: int = 0):
    """A `BertForSequenceClassification` of `shape`, every weight cut from the teacher.

    Returns (student, kept): the teacher channels kept, and the heads kept in each layer.
    """
    from transformers import BertForSequenceClassification

    check_prunable(teacher.config, shape, layers)
    scores = importance(teacher, batches)
    t_head = head_size(teacher.config)
    channels = top(scores["channels"], shape.hidden_size)
    heads = [top(scores["heads"][j], shape.num_attention_heads) for j in layers]
    neurons = [top(scores["neurons"][j], shape.intermediate_size) for j in layers]
    head_dims = [
        (h.unsqueeze(1) * t_head + torch.arange(t_head)).reshape(-1) for h in heads
    ]  # head index -> its rows in the query/key/value projections

    config = copy.deepcopy(teacher.config)
    config.hidden_size = shape.hidden_size
    config.num_hidden_layers = shape.num_hidden_layers
    config.num_attention_heads = shape.num_attention_heads
    config.intermediate_size = shape.intermediate_size
    torch.manual_seed(seed)
    student = BertForSequenceClassification(config)

    source = teacher.state_dict()
    cut = {}
    for key, target in student.state_dict().items():
        match = LAYER_KEY.match(key)
        if match:
            i, rest = int(match.group(1)), match.group(2)
            value = source[f"bert.encoder.layer.{layers[i]}.{rest}"]
            cut[key] = _cut_layer(rest, value, channels, head_dims[i], neurons[i])
        elif key in source:
            cut[key] = _cut_outer(key, source[key], channels)
        else:
            cut[key] = target  # a buffer the teacher lacks: keep the fresh one
        if cut[key].shape != target.shape:
            raise AssertionError(f"pruning {key}: {tuple(cut[key].shape)} vs {tuple(target.shape)}")
    student.load_state_dict({k: v.clone().contiguous() for k, v in cut.items()})
    student.float().train()
    return student, {"channels": channels.tolist(), "heads": [h.tolist() for h in heads]}


def _cut_layer(rest: str, value, channels, head_dims, neurons) -> torch.Tensor:
    if rest.startswith("attention.self."):  # query/key/value: (heads x head, hidden)
        value = value[head_dims]
        return value[:, channels] if value.dim() == 2 else value
    if rest.startswith("attention.output.dense."):  # (hidden, heads x head)
        return value[channels][:, head_dims] if value.dim() == 2 else value[channels]
    if rest.startswith("intermediate.dense."):  # (ffn, hidden)
        value = value[neurons]
        return value[:, channels] if value.dim() == 2 else value
    if rest.startswith("output.dense."):  # (hidden, ffn)
        return value[channels][:, neurons] if value.dim() == 2 else value[channels]
    if "LayerNorm" in rest:
        return value[channels]
    raise ValueError(f"pruning: no rule for encoder weight '{rest}'")


def _cut_outer(key: str, value, channels) -> torch.Tensor:
    if key.startswith("bert.embeddings.") and value.is_floating_point():
        return value[..., channels]  # tables (rows, hidden) and the LayerNorm (hidden,)
    if key.startswith("bert.pooler.dense."):  # (hidden, hidden)
        return value[channels][:, channels] if value.dim() == 2 else value[channels]
    if key == "classifier.weight":  # (labels, hidden)
        return value[:, channels]
    return value  # classifier.bias, integer buffers (position ids)

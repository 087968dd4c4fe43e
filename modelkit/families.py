"""Encoder families the project distills, exports and quantizes: one registry, keyed by the
`model_type` of a Hugging Face config.

Each entry says what differs between families where our code cares: whether the model takes
`token_type_ids`, where its transformer blocks live, what its self-attention's query/key/value
projections are called (MiniLM relation matches hook them), and whether the width-pruning
initialisation (distill/prune.py, written against BERT's parameter names) can cut it.
optimum-onnx exports every family here for text classification, and its `ORTOptimizer` fuses
each with ORT's transformer fusions (tests/test_families.py runs every family through every
stage on a tiny config).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelkit.errors import InputError


@dataclass(frozen=True)
class Family:
    model_type: str
    token_type_ids: bool  # the embeddings can add a token-type table (segment A/B)
    layers_attr: str = "encoder.layer"  # transformer blocks under model.base_model
    # query, key, value projections (nn.Linear) inside one transformer block
    projections: tuple[str, str, str] = (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
    )
    prunable: bool = False  # distill/prune.py can cut a narrower student from it
    # ORT's transformer optimizer fuses its self-attention into one Attention op (DeBERTa's
    # disentangled attention has no fusion: its LayerNorm/GELU fuse, its attention stays ops)
    fused_attention: bool = True


FAMILIES: dict[str, Family] = {
    f.model_type: f
    for f in (
        Family("bert", token_type_ids=True, prunable=True),
        Family("roberta", token_type_ids=False),
        Family("xlm-roberta", token_type_ids=False),
        Family("camembert", token_type_ids=False),
        Family("electra", token_type_ids=True),
        Family(
            "distilbert",
            token_type_ids=False,
            layers_attr="transformer.layer",
            projections=("attention.q_lin", "attention.k_lin", "attention.v_lin"),
        ),
        # MPNet (all-mpnet-base-v2): no token types; one relative-position bias table
        # (`encoder.relative_attention_bias`, outside the blocks, so a student of copied layers
        # keeps it) added to every block's attention scores. ORT's BERT fusion (optimum maps
        # mpnet to "bert") finds no Attention pattern with that extra Add: LayerNorm/GELU fuse,
        # attention stays ops. Attention maps are post-softmax with the bias in, so attention
        # matches compare what each model attends to, as for BERT.
        Family(
            "mpnet",
            token_type_ids=False,
            projections=("attention.attn.q", "attention.attn.k", "attention.attn.v"),
            fused_attention=False,
        ),
        Family(
            "deberta-v2",
            token_type_ids=True,
            fused_attention=False,
            projections=(
                "attention.self.query_proj",
                "attention.self.key_proj",
                "attention.self.value_proj",
            ),
        ),
    )
}


def family_of(config, what: str, class_name: str = "(none listed)") -> Family:
    """The family of a model config; InputError naming the architecture and the supported types.

    `class_name` names the architecture when the config lists none (a model built in memory)."""
    model_type = getattr(config, "model_type", "?")
    if model_type not in FAMILIES:
        arch = ", ".join(getattr(config, "architectures", None) or [class_name])
        raise InputError(
            f"{what}: architecture {arch} (model_type '{model_type}') is not supported; supported "
            f"BERT-family model types: {', '.join(FAMILIES)}"
        )
    return FAMILIES[model_type]


def encoder_layers(model):
    """The transformer blocks of a model of a supported family (a torch ModuleList)."""
    from operator import attrgetter

    family = family_of(model.config, "encoder layers", type(model).__name__)
    return attrgetter(family.layers_attr)(model.base_model)


def takes_token_type_ids(config) -> bool:
    """Whether a model of this config reads `token_type_ids` (and its ONNX export declares them):
    its family has a token-type table and the config gives it rows (DeBERTa-v2's default
    type_vocab_size is 0, so most DeBERTa-v2 checkpoints take none)."""
    family = family_of(config, "token_type_ids")
    return family.token_type_ids and getattr(config, "type_vocab_size", 1) > 0

"""Encoder families the project distills, exports and quantizes: one registry, keyed by the
`model_type` of a Hugging Face config.

Each entry says what differs between families where our code cares: whether the model takes
`token_type_ids`, and where its transformer blocks live. optimum-onnx exports every family here
for text classification and its `ORTOptimizer` fuses them with ORT's "bert" fusions.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelkit.errors import InputError


@dataclass(frozen=True)
class Family:
    model_type: str
    token_type_ids: bool  # the embeddings add a token-type table (segment A/B)
    layers_attr: str = "encoder.layer"  # transformer blocks under model.base_model


FAMILIES: dict[str, Family] = {
    f.model_type: f
    for f in (
        Family("bert", token_type_ids=True),
        Family("roberta", token_type_ids=False),
        Family("xlm-roberta", token_type_ids=False),
        Family("camembert", token_type_ids=False),
        Family("electra", token_type_ids=True),
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

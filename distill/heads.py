"""One encoder, one head per task: the model's own head is the default task's, `TaskHeads` holds
the others.

A task head is the model's output layer, the last `nn.Linear` of its classification head
(`classifier` in BERT, DistilBERT and DeBERTa-v2; `classifier.out_proj` in RoBERTa, XLM-R and
ELECTRA); everything below it is shared. `TaskHeads.use(model, name)` runs the model with another
task's output layer in place of its own, by a forward hook that replaces the output layer's
result: the model stays a plain `…ForSequenceClassification` that saves, loads and exports as
one, and the heads save beside it (`heads.safetensors` + `heads.json`).

Written here because transformers' classifiers have one head and neither TextBrewer (its
MultiTaskDistiller takes one model per task) nor a maintained library keeps extra heads on a
Hugging Face model without changing its class.

The same heads one layer on, in the exported graph (one ONNX output per task): export.heads.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import torch

from modelkit.errors import InputError

HEADS_WEIGHTS = "heads.safetensors"
HEADS_CONFIG = "heads.json"


def output_layer(model) -> torch.nn.Linear:
    """The last Linear of the model's classification head (its logits)."""
    head = getattr(model, "classifier", None)
    layer = getattr(head, "out_proj", head)
    if not isinstance(layer, torch.nn.Linear):
        raise InputError(
            f"{type(model).__name__}: no Linear output layer at `classifier` or "
            "`classifier.out_proj`, so extra task heads cannot be attached; multi-task transfer "
            "supports BERT, DistilBERT, DeBERTa-v2, RoBERTa, XLM-R and ELECTRA classifiers."
        )
    return layer


class TaskHeads(torch.nn.Module):
    """Output layers of the tasks other than the default one, and every task's labels.

    `tasks` maps name → labels, the default task first; its head is the model's own.
    """

    def __init__(self, tasks: dict[str, list[str]], in_features: int, init_std: float = 0.02):
        super().__init__()
        self.tasks = {name: list(labels) for name, labels in tasks.items()}
        self.default = next(iter(self.tasks))
        self.heads = torch.nn.ModuleDict()
        for name, labels in list(self.tasks.items())[1:]:
            layer = torch.nn.Linear(in_features, len(labels))
            torch.nn.init.normal_(layer.weight, std=init_std)  # as transformers inits a head
            torch.nn.init.zeros_(layer.bias)
            self.heads[name] = layer

    @classmethod
    def for_model(cls, model, tasks: dict[str, list[str]]) -> TaskHeads:
        layer = output_layer(model)
        default = next(iter(tasks))
        if layer.out_features != len(tasks[default]):
            raise InputError(
                f"the model's own head has {layer.out_features} outputs but the default task "
                f"{default!r} has {len(tasks[default])} labels"
            )
        std = getattr(model.config, "initializer_range", 0.02)
        return cls(tasks, layer.in_features, std)

    @property
    def names(self) -> list[str]:
        return list(self.tasks)

    def check_name(self, name: str) -> None:
        if name not in self.tasks:
            raise InputError(f"unknown task {name!r}; this model's tasks: {self.names}")

    @contextmanager
    def use(self, model, name: str):
        """Within the block, `model(...).logits` are task `name`'s."""
        self.check_name(name)
        if name == self.default:
            yield
            return
        head = self.heads[name]
        handle = output_layer(model).register_forward_hook(lambda _m, args, _out: head(args[0]))
        try:
            yield
        finally:
            handle.remove()

    def copy_from(self, other: TaskHeads) -> None:
        """The other model's heads, for tasks of the same name and shape (a student copying its
        teacher's heads when their widths agree)."""
        for name, layer in self.heads.items():
            source = other.heads[name] if name in other.heads else None  # noqa: SIM401 (ModuleDict)
            if source is not None and source.weight.shape == layer.weight.shape:
                layer.load_state_dict(source.state_dict())

    def save(self, folder: str | Path, metrics: dict[str, str] | None = None) -> None:
        from safetensors.torch import save_file

        from modelkit.files import atomic_write

        folder = Path(folder)
        state = {k: v.detach().cpu().contiguous() for k, v in self.heads.state_dict().items()}
        save_file(state, str(folder / HEADS_WEIGHTS))
        config = {
            "default": self.default,
            "tasks": [
                {"name": n, "labels": labels, "metric": (metrics or {}).get(n, "accuracy")}
                for n, labels in self.tasks.items()
            ],
        }
        text = json.dumps(config, indent=2) + "\n"
        atomic_write(folder / HEADS_CONFIG, lambda handle: handle.write(text))


def read_heads_config(folder: str | Path) -> dict | None:
    """heads.json of a model folder (None: a single-task model)."""
    path = Path(folder) / HEADS_CONFIG
    return json.loads(path.read_text()) if path.is_file() else None


def load_heads(folder: str | Path, model) -> TaskHeads | None:
    """The heads saved beside a model (safetensors only), or None for a single-task model."""
    from safetensors.torch import load_file

    config = read_heads_config(folder)
    if config is None:
        return None
    heads = TaskHeads.for_model(model, {t["name"]: t["labels"] for t in config["tasks"]})
    heads.heads.load_state_dict(load_file(str(Path(folder) / HEADS_WEIGHTS)), strict=True)
    return heads


class MultiTaskModel(torch.nn.Module):
    """A model and its heads as one module (what a Trainer trains and checkpoints)."""

    def __init__(self, model, heads: TaskHeads):
        super().__init__()
        self.model = model
        self.task_heads = heads

    @property
    def config(self):
        return self.model.config

    def forward(self, task: str, **inputs):
        with self.task_heads.use(self.model, task):
            return self.model(**inputs)

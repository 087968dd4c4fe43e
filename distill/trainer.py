"""`DistillationTrainer`: the HF `Trainer`, specialised only at `compute_loss` and `log`.

The student and the training-only projections live in one module, `DistillationModule`, which is
what the Trainer trains: the optimizer, DDP's gradient averaging and every checkpoint cover the
projections with no hook of ours, and resume is exact. Its `forward` runs the student and the
combined loss (in fp32, outside any autocast); the teacher runs in `compute_loss`, in eval mode
under `torch.no_grad()`, unless the batch carries cached teacher logits. Only
`DistillationModule.student` is the result: the projections never reach the saved model.

- `compute_loss`: teacher forward (or cached logits) → `model(...)` → the total; every term is
  accumulated for logging.
- `log`: each term's mean since the last log, unweighted (`loss_<term>`) and weighted
  (`loss_<term>_weighted`), plus the scheduled weights and temperature.

A teacher in half precision (bf16/fp16, to save GPU memory and time) is fine: its outputs are cast
to fp32 before the loss.
"""

from __future__ import annotations

import math
from collections import defaultdict
from contextlib import nullcontext
from typing import Any, NamedTuple

import torch
from transformers import Trainer

from distill.combined import CombinedLoss, Schedule
from distill.heads import TaskHeads
from distill.multitask import TaskBatchLoader
from distill.relations import RelationCapture
from modelkit.errors import InputError


class NonFiniteLossError(InputError):
    """Training produced a NaN or infinite loss; the message names the step and the terms."""


class TeacherOutputs(NamedTuple):
    """What the loss reads of the teacher (a NamedTuple, which DDP passes through forward)."""

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    relations: dict[str, tuple[torch.Tensor, ...]] | None = None  # query/key/value per layer


class DistillOutput(NamedTuple):
    loss: torch.Tensor
    logits: torch.Tensor  # the student's
    terms: dict[str, torch.Tensor]  # unweighted
    weights: dict[str, float]  # scheduled weights and temperature at this step


class DistillationModule(torch.nn.Module):
    """The student and the combined loss (with its training-only projections) as one module."""

    accepts_loss_kwargs = False  # the loss is a batch mean of our own: no token-count rescaling

    def __init__(
        self,
        student: torch.nn.Module,
        loss: CombinedLoss,
        heads: TaskHeads | None = None,
        task_weights: dict[str, Schedule] | None = None,
    ) -> None:
        super().__init__()
        self.student = student
        self.loss = loss
        # Multi-task (pipelines/multitask): one head per task, each batch one task's, its loss
        # times the task's λ; every term is reported as <task>/<term>.
        self.heads = heads
        self.task_weights = task_weights or {}
        features = loss.spec.relation_features
        self._relations = RelationCapture(student, features) if features else None

    def task_name(self, task: torch.Tensor | None) -> str | None:
        return None if task is None or self.heads is None else self.heads.names[int(task[0])]

    def forward(
        self,
        labels: torch.Tensor,
        teacher: TeacherOutputs,
        progress: float = 0.0,
        task: torch.Tensor | None = None,
        **inputs,
    ) -> DistillOutput:
        spec = self.loss.spec
        name = self.task_name(task)
        with self.heads.use(self.student, name) if name else nullcontext():
            out_s = self.student(
                **inputs,
                output_hidden_states=spec.needs_hidden,
                output_attentions=spec.needs_attention,
            )
        device = out_s.logits.device.type
        with torch.autocast(device_type=device, enabled=False):  # the loss in fp32
            out_s = as_float32(out_s)
            total, terms, weights = self.loss(
                out_s,
                teacher.logits.float(),
                labels,
                inputs.get("attention_mask"),
                out_t=teacher if spec.needs_teacher_features else None,
                progress=progress,
                relations_s=self._relations.take() if self._relations else None,
            )
        if name:
            lam = self.task_weights[name].at(progress) if name in self.task_weights else 1.0
            total = lam * total
            temperature = weights.pop("temperature")
            terms = {f"{name}/{k}": v for k, v in terms.items()}
            weights = {f"{name}/{k}": v * lam for k, v in weights.items()}
            weights.update({f"lambda_{name}": lam, "temperature": temperature})
        return DistillOutput(total, out_s.logits, terms, weights)

    def remove_hooks(self) -> None:
        """Stop capturing projections (after training: the student is used on its own)."""
        if self._relations is not None:
            self._relations.remove()
            self._relations = None

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Strict whatever the caller asks: the Trainer resumes with strict=False, and a checkpoint
        missing the student's or the projections' weights must fail, not train on silently."""
        return super().load_state_dict(state_dict, strict=True, assign=assign)


class DistillationTrainer(TaskBatchLoader, Trainer):
    def __init__(self, *args, teacher=None, teacher_heads=None, task_batches=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher
        self.teacher_heads = teacher_heads  # multi-task: the teacher's head per task
        if teacher_heads is not None:
            teacher_heads.to(self.args.device).eval().requires_grad_(False)
        self.task_batches = task_batches  # multi-task: one task per batch (distill.multitask)
        self._teacher_relations = None
        if teacher is not None:
            self.teacher = teacher.to(self.args.device).eval()
            self.teacher.requires_grad_(False)
            features = self.accelerator.unwrap_model(self.model).loss.spec.relation_features
            if features:
                self._teacher_relations = RelationCapture(self.teacher, features)
        self._term_sums: dict[str, float] = defaultdict(float)
        self._term_steps: dict[str, int] = defaultdict(int)  # per term: multi-task batches differ
        self._last_weights: dict[str, float] = {}

    def get_decay_parameter_names(self, model) -> list[str]:
        """The Trainer's rule (no decay for biases and LayerNorms), and none for the projections."""
        return [n for n in super().get_decay_parameter_names(model) if not n.startswith("loss.")]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        cached_logits = inputs.pop("teacher_logits", None)
        spec = self.accelerator.unwrap_model(model).loss.spec
        if cached_logits is not None and not spec.needs_teacher_features:
            teacher = TeacherOutputs(cached_logits)
        else:
            if self.teacher is None:
                raise ValueError("no teacher given and the batch carries no teacher_logits")
            name = self.accelerator.unwrap_model(model).task_name(inputs.get("task"))
            head = self.teacher_heads.use(self.teacher, name) if name else nullcontext()
            features = {k: v for k, v in inputs.items() if k != "task"}
            with torch.no_grad(), head:
                out_t = as_float32(
                    self.teacher(
                        **features,
                        output_hidden_states=spec.needs_hidden,
                        output_attentions=spec.needs_attention,
                    )
                )
            relations = self._teacher_relations.take() if self._teacher_relations else None
            teacher = TeacherOutputs(out_t.logits, out_t.hidden_states, out_t.attentions, relations)
        state = self.state
        progress = state.global_step / state.max_steps if state.max_steps else 0.0
        out = model(labels=labels, teacher=teacher, progress=progress, **inputs)
        if model.training:
            terms = {name: float(value.detach()) for name, value in out.terms.items()}
            if not torch.isfinite(out.loss.detach()):
                bad = ", ".join(f"{k}={v}" for k, v in terms.items() if not math.isfinite(v))
                raise NonFiniteLossError(
                    f"step {state.global_step + 1}: the distillation loss is not finite "
                    f"({bad or 'a weighted sum overflowed'}; weights {out.weights}). Lower the "
                    "learning rate or the loss weights, or check the data; nothing was saved."
                )
            for name, value in terms.items():
                self._term_sums[name] += value
                self._term_steps[name] += 1
            self._last_weights.update(out.weights)
        return (out.loss, out) if return_outputs else out.loss

    def log(self, logs, *args, **kwargs):
        if self._term_steps:
            for name, total in self._term_sums.items():
                mean = total / self._term_steps[name]
                logs[f"loss_{name}"] = round(mean, 6)
                logs[f"loss_{name}_weighted"] = round(mean * self._last_weights.get(name, 0.0), 6)
            for name, value in self._last_weights.items():
                plain = name == "temperature" or name.startswith("lambda_")
                logs[name if plain else f"weight_{name}"] = round(value, 6)
            self._term_sums.clear()
            self._term_steps.clear()
        return super().log(logs, *args, **kwargs)

    def remove_hooks(self) -> None:
        """Stop capturing the teacher's and the student's projections once training is over."""
        if self._teacher_relations is not None:
            self._teacher_relations.remove()
            self._teacher_relations = None
        self.accelerator.unwrap_model(self.model).remove_hooks()


def as_float32(output: Any):
    """A model output with every floating tensor (also inside tuples) in fp32; fp32 ones as is."""

    def cast(value):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.float()  # no copy when already fp32
        if isinstance(value, tuple):
            return tuple(cast(v) for v in value)
        return value

    return type(output)(**{k: cast(v) for k, v in output.items()})


class TeacherLogitsCollator:
    """Pads token fields like `DataCollatorWithPadding` and stacks cached `teacher_logits`;
    `token_labels`: per-token labels, padded with -100 (`DataCollatorForTokenClassification`)."""

    def __init__(self, tokenizer, token_labels: bool = False):
        from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

        pad = DataCollatorForTokenClassification if token_labels else DataCollatorWithPadding
        self.pad = pad(tokenizer)

    def __call__(self, features):
        logits = (
            [f.pop("teacher_logits") for f in features] if "teacher_logits" in features[0] else None
        )
        batch = self.pad(features)
        if logits is not None:
            batch["teacher_logits"] = torch.tensor(logits, dtype=torch.float32)
        return batch

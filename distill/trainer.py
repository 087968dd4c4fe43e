"""`DistillationTrainer`: the HF `Trainer`, specialised only at its hooks.

- `compute_loss`: student forward; teacher forward in eval mode under `torch.no_grad()` (or cached
  teacher logits from the batch); the combined loss; every term accumulated for logging.
- `log`: adds each term's mean since the last log, unweighted (`loss_<term>`) and weighted
  (`loss_<term>_weighted`), plus the scheduled weights and temperature, so TensorBoard/MLflow see them.
- `create_optimizer`: the training-only projections join the optimizer (they are not part of the
  student, so the Trainer would not see them); `_save_checkpoint` / `_load_from_checkpoint` keep
  them in each checkpoint so resume is exact.
- `training_step`: under DDP the wrapped student's gradients are averaged by DDP; the projections
  sit outside it, so their gradients are averaged here, or each process would train its own.

A teacher in half precision (bf16/fp16, to save GPU memory and time) is fine: its outputs are cast
to fp32 before the loss.
"""

from __future__ import annotations

import os
from collections import defaultdict

import torch
from transformers import Trainer

from distill.combined import CombinedLoss

PROJECTIONS_FILE = "distill_projections.safetensors"


class DistillationTrainer(Trainer):
    def __init__(self, *args, teacher=None, loss: CombinedLoss, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_fn = loss.to(self.args.device)
        self.teacher = teacher
        if teacher is not None:
            self.teacher = teacher.to(self.args.device).eval()
            self.teacher.requires_grad_(False)
        self._term_sums: dict[str, float] = defaultdict(float)
        self._term_steps = 0
        self._last_weights: dict[str, float] = {}

    # ------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        cached_logits = inputs.pop("teacher_logits", None)
        spec = self.loss_fn.spec
        flags = {
            "output_hidden_states": spec.needs_hidden,
            "output_attentions": spec.needs_attention,
        }
        out_s = model(**inputs, **flags)
        out_t = None
        if cached_logits is not None and not spec.needs_teacher_features:
            logits_t = cached_logits.to(out_s.logits.dtype)
        else:
            if self.teacher is None:
                raise ValueError("no teacher given and the batch carries no teacher_logits")
            with torch.no_grad():
                out_t = as_float32(self.teacher(**inputs, **flags))
            logits_t = out_t.logits
        progress = self.state.global_step / self.state.max_steps if self.state.max_steps else 0.0
        total, terms, weights = self.loss_fn(
            out_s, logits_t, labels, inputs.get("attention_mask"), out_t=out_t, progress=progress
        )
        if model.training:
            for name, value in terms.items():
                self._term_sums[name] += float(value.detach())
            self._term_steps += 1
            self._last_weights = weights
        return (total, out_s) if return_outputs else total

    def log(self, logs, *args, **kwargs):
        if self._term_steps:
            for name, total in self._term_sums.items():
                mean = total / self._term_steps
                logs[f"loss_{name}"] = round(mean, 6)
                logs[f"loss_{name}_weighted"] = round(mean * self._last_weights.get(name, 0.0), 6)
            for name, value in self._last_weights.items():
                logs[f"weight_{name}" if name != "temperature" else "temperature"] = round(value, 6)
            self._term_sums.clear()
            self._term_steps = 0
        return super().log(logs, *args, **kwargs)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._average_projection_grads()
        return loss

    # ------------------------------------------------------------------ projections
    def _average_projection_grads(self) -> None:
        """Mean of the projections' gradients over the DDP processes (in place).

        Averaging after every micro-batch is exact under gradient accumulation too: the part
        accumulated earlier is already equal on every process, and its mean is itself.
        """
        if self.args.world_size <= 1:
            return
        grads = [p.grad for p in self.loss_fn.parameters() if p.grad is not None]
        if not grads:
            return
        import torch.distributed as dist

        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.args.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def create_optimizer(self):
        optimizer = super().create_optimizer()
        params = [p for p in self.loss_fn.parameters() if p.requires_grad]
        if params and not any(p is params[0] for g in optimizer.param_groups for p in g["params"]):
            optimizer.add_param_group({"params": params, "weight_decay": 0.0})
        return optimizer

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if len(self.loss_fn.projections) and self.args.should_save:
            from safetensors.torch import save_file

            folder = os.path.join(self.args.output_dir, f"checkpoint-{self.state.global_step}")
            state = {k: v.detach().cpu().contiguous() for k, v in self.loss_fn.state_dict().items()}
            save_file(state, os.path.join(folder, PROJECTIONS_FILE))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, PROJECTIONS_FILE)
        if os.path.isfile(path):
            from safetensors.torch import load_file

            self.loss_fn.load_state_dict(load_file(path, device=str(self.args.device)))


def as_float32(output):
    """A model output with every floating tensor (also inside tuples) in fp32; fp32 ones as is."""

    def cast(value):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.float()  # no copy when already fp32
        if isinstance(value, tuple):
            return tuple(cast(v) for v in value)
        return value

    return type(output)(**{k: cast(v) for k, v in output.items()})


class TeacherLogitsCollator:
    """Pads token fields like `DataCollatorWithPadding` and stacks cached `teacher_logits`."""

    def __init__(self, tokenizer):
        from transformers import DataCollatorWithPadding

        self.pad = DataCollatorWithPadding(tokenizer)

    def __call__(self, features):
        logits = (
            [f.pop("teacher_logits") for f in features] if "teacher_logits" in features[0] else None
        )
        batch = self.pad(features)
        if logits is not None:
            batch["teacher_logits"] = torch.tensor(logits, dtype=torch.float32)
        return batch

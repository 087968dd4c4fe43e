"""The teacher stage's `multitask` variant (a recipe with `transfer.enabled`): one encoder, one
head per task. pipelines/run/registry.py runs its `main` instead of pipelines/stages/teacher.py's.

- joint: one run over every task's rows, each batch one task's (transfer.sampling), its
  cross-entropy times the task's λ: the sum L = Σ_t λ_t·L_t in expectation over the batches.
- sequential: each source task in recipe order for `transfer.source_epochs`, then the target for
  `teacher.epochs`; λ does not enter (one task at a time). The source heads are kept and reported.

Each phase checkpoints in `checkpoints/<phase>/` and, once finished, leaves the model and heads in
`checkpoints/<phase>-done/`, so an interrupted run resumes inside the phase it was in.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict

from distill.heads import MultiTaskModel, TaskHeads, load_heads
from distill.multitask import TaskBatchLoader, TaskBatchSampler
from modelkit.files import atomic_write
from pipelines.core.context import StageContext
from pipelines.data.loading import require_rows
from pipelines.multitask.tasks import Task, tokenized_tasks
from pipelines.teacher.checked_trainer import CheckedTrainer
from pipelines.train.callbacks import logging_callback, progress_callback, show_progress
from pipelines.train.checkpoints import last_checkpoint
from pipelines.train.settings import batch_info, training_arguments

log = logging.getLogger("distillery")


class TaskTrainer(TaskBatchLoader, CheckedTrainer):
    """The teacher's Trainer with one task per batch: CE on that task's head, times its λ; the
    loss of each task logged on its own (`loss_<task>`, `loss_<task>_weighted`, `lambda_<task>`)."""

    def __init__(self, *args, tasks: list[Task], task_batches, use_weights: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.tasks, self.task_batches, self.use_weights = tasks, task_batches, use_weights
        self._sums: dict[str, float] = defaultdict(float)
        self._steps: dict[str, int] = defaultdict(int)
        self._lambdas: dict[str, float] = {}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch.nn.functional as F

        inputs = dict(inputs)
        labels, task = inputs.pop("labels"), self.tasks[int(inputs.pop("task")[0])]
        out = model(task=task.name, **inputs)
        loss = F.cross_entropy(out.logits.float(), labels)
        state = self.state
        progress = state.global_step / state.max_steps if state.max_steps else 0.0
        lam = task.weight.at(progress) if self.use_weights else 1.0
        if model.training:
            self._sums[task.name] += float(loss.detach())
            self._steps[task.name] += 1
            self._lambdas[task.name] = lam
        total = lam * loss
        return (total, out) if return_outputs else total

    def log(self, logs, *args, **kwargs):
        for name, total in self._sums.items():
            mean = total / self._steps[name]
            logs[f"loss_{name}"] = round(mean, 6)
            logs[f"loss_{name}_weighted"] = round(mean * self._lambdas[name], 6)
            logs[f"lambda_{name}"] = round(self._lambdas[name], 6)
        self._sums.clear()
        self._steps.clear()
        return super().log(logs, *args, **kwargs)


def phases(ctx: StageContext, tasks: list[Task]) -> list[tuple[str, list[int], float]]:
    """(phase name, task indices, epochs) in training order."""
    t, epochs = ctx.recipe.transfer, ctx.recipe.teacher.epochs
    if t.mode == "joint":
        return [("joint", list(range(len(tasks))), epochs)]
    sources = [(f"source-{task.name}", [i], t.source_epochs) for i, task in enumerate(tasks)][1:]
    return [*sources, (f"target-{tasks[0].name}", [0], epochs)]


def train_multitask_teacher(ctx: StageContext, model, tokenizer, tasks: list[Task]):
    """(model, heads, training facts): the teacher trained on every task as the recipe says."""
    from datasets import concatenate_datasets
    from transformers import DataCollatorWithPadding

    recipe, tcfg = ctx.recipe, ctx.recipe.teacher
    heads = TaskHeads.for_model(model, {task.name: task.labels for task in tasks})
    train_sets = _train_sets(tasks, tokenizer, tcfg.batch_size)
    facts: dict = {"mode": recipe.transfer.mode, "phases": []}
    checkpoints = ctx.out / "checkpoints"
    for phase, chosen, epochs in phases(ctx, tasks):
        done = checkpoints / f"{phase}-done"
        if (done / "phase.json").is_file():  # finished before an interruption
            model, heads, phase_facts = _load_phase(done)
            facts["phases"].append(phase_facts)
            log.info("teacher phase %s already done (%s)", phase, done)
            continue
        data = concatenate_datasets([train_sets[i] for i in chosen])
        batches = TaskBatchSampler(  # groups by position in this phase's data
            [j for j, i in enumerate(chosen) for _ in range(len(train_sets[i]))],
            tcfg.batch_size,
            recipe.transfer.sampling,
            recipe.transfer.sampling_temperature,
            recipe.seed,
        )
        args = training_arguments(
            recipe, checkpoints / phase, tcfg, train_rows=len(data), epochs=epochs
        )
        trainer = TaskTrainer(
            model=MultiTaskModel(model, heads),
            args=args,
            train_dataset=data,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
            callbacks=[logging_callback()],
            tasks=tasks,  # the `task` column holds positions in the run's task list
            task_batches=batches,
            use_weights=recipe.transfer.mode == "joint",
        )
        resume = last_checkpoint(checkpoints / phase)
        if resume:
            log.info("resuming teacher phase %s from %s", phase, resume)
        shown = progress_callback(f"training {phase}")
        show_progress(trainer, shown)
        try:
            output = trainer.train(resume_from_checkpoint=resume)
        finally:
            shown.stop()  # a no-op after a finished run; the log says where a failed one stopped
        model, heads = trainer.model.model, trainer.model.task_heads
        names = {i: tasks[i].name for i in chosen}
        facts["phases"].append(
            {
                "phase": phase,
                "tasks": list(names.values()),
                "rows": {name: len(train_sets[i]) for i, name in names.items()},
                "epochs": epochs,
                "global_step": trainer.state.global_step,
                "resumed_from": resume,
                "train_loss": output.training_loss,
                "train_seconds": output.metrics.get("train_runtime"),
                "batches_per_task": _batches_per_task(batches, list(names.values())),
                **batch_info(args),
            }
        )
        _save_phase(done, model, heads, facts["phases"][-1])
    facts["sampling"] = recipe.transfer.sampling if recipe.transfer.mode == "joint" else None
    facts["weights"] = (
        {task.name: vars(task.weight) for task in tasks}
        if recipe.transfer.mode == "joint"
        else "not used: sequential mode trains one task at a time"
    )
    return model, heads, facts


def _train_sets(tasks: list[Task], tokenizer, batch_size: int) -> list:
    """Each task's tokenized train split, each checked to hold a batch."""
    train_sets = tokenized_tasks(tasks, tokenizer, "train")
    for task, rows in zip(tasks, train_sets, strict=True):
        require_rows(
            rows,
            f"{task.name}: {task.recipe.data.train_split}",
            batch_size,
            f"teacher.batch_size is {batch_size}",
        )
    return train_sets


def _load_phase(done):
    """(model, heads, phase facts) of a phase finished before an interruption."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(done, use_safetensors=True)
    return model, load_heads(done, model), json.loads((done / "phase.json").read_text())


def _save_phase(done, model, heads, phase_facts: dict) -> None:
    """The phase's result, its facts last: a folder with phase.json is a finished phase."""
    done.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(done, safe_serialization=True)
    heads.save(done)
    text = json.dumps(phase_facts, indent=2, default=str)
    atomic_write(done / "phase.json", lambda handle, text=text: handle.write(text))


def _batches_per_task(batches: TaskBatchSampler, names: list[str]) -> dict[str, int]:
    order = batches.task_order(0)
    return {name: int(sum(1 for t in order if t == i)) for i, name in enumerate(names)}


def main(ctx: StageContext):
    """The teacher stage for a transfer recipe (the registry's `multitask` variant)."""
    import shutil

    from transformers import set_seed

    from pipelines.core.context import StageResult
    from pipelines.core.distributed import is_main
    from pipelines.core.models import HEADS_ARTIFACTS, MODEL_ARTIFACTS, save_model
    from pipelines.multitask.evaluate import evaluate_tasks
    from pipelines.multitask.tasks import transfer_tasks
    from pipelines.teacher.model import build_teacher
    from pipelines.train.settings import resolve_device

    recipe, t = ctx.recipe, ctx.recipe.teacher
    device = resolve_device(recipe)
    set_seed(recipe.seed)
    tasks = transfer_tasks(recipe, ctx.data())
    sources = [
        x for task in tasks[1:] for c in task.recipe.task.text_columns for x in task.data.train[c]
    ]
    tokenizer, model = build_teacher(ctx, ctx.data(), sources)
    if t.finetune:
        model, heads, facts = train_multitask_teacher(ctx, model, tokenizer, tasks)
    else:
        heads, facts = TaskHeads.for_model(model, {x.name: x.labels for x in tasks}), {}
    eval_sets = tokenized_tasks(tasks, tokenizer, "eval")
    per_task = evaluate_tasks(
        model, heads, tasks, eval_sets, tokenizer, t.eval_batch_size, device, "teacher"
    )
    metrics = {k: v for k, v in per_task[tasks[0].name].items() if k != "metric"}
    if is_main():
        save_model(model, tokenizer, ctx.out)
        heads.save(ctx.out, {x.name: x.metric for x in tasks})
        shutil.rmtree(ctx.out / "checkpoints", ignore_errors=True)
        shutil.rmtree(ctx.out / "vocab", ignore_errors=True)
    return StageResult(
        metrics=metrics,
        artifacts={**MODEL_ARTIFACTS, **HEADS_ARTIFACTS},
        extra={
            "training": facts,
            "tasks": per_task,
            "device": device,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
    )

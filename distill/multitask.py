"""Which task each training batch comes from: the sampling rules of joint multi-task training.

Every batch holds rows of one task (each task has its own head and labels). An epoch is the same
number of batches under every rule, Σ_t ceil(rows_t / batch_size), so epochs, schedules and
checkpoints mean the same whatever the rule:

- proportional: each task's rows, shuffled and cut into batches, all batches shuffled together;
  every row is seen once per epoch, a task's share of steps is its share of rows (MT-DNN).
- temperature: each batch's task drawn with p_t ∝ rows_t^(1/T) (T = 1: proportional in
  expectation; large T: towards uniform), rows drawn from that task's shuffled stream, reshuffled
  when it runs out (the multilingual-BERT / T5 rule that lifts small tasks).
- round_robin: tasks in turn, one batch each; a task that runs out is reshuffled.

The order is a function of (seed, epoch) alone, so a resumed run sees the batches it would have
seen. Written by hand: neither torch nor transformers samples batches per task, and TextBrewer's
multi-task distiller (unmaintained) only cycles tasks in turn.
"""

from __future__ import annotations

import math

import numpy as np

from modelkit.errors import InputError, lookup


def _proportional(streams, counts, total, rng, _temperature):
    order = [t for t, n in enumerate(counts) for _ in range(n)]
    return [order[i] for i in rng.permutation(len(order))]


def _temperature(streams, counts, total, rng, temperature):
    sizes = np.array([len(s) for s in streams], dtype=float)
    p = sizes ** (1.0 / temperature)
    p /= p.sum()
    return list(rng.choice(len(streams), size=total, p=p))


def _round_robin(streams, counts, total, rng, _temperature):
    return [i % len(streams) for i in range(total)]


SAMPLING = {
    "proportional": _proportional,
    "temperature": _temperature,
    "round_robin": _round_robin,
}


class TaskBatchSampler:
    """Batches of row indices into a dataset whose rows are grouped by `task_of_row`."""

    def __init__(
        self,
        task_of_row,
        batch_size: int,
        rule: str = "proportional",
        temperature: float = 2.0,
        seed: int = 0,
    ):
        lookup(SAMPLING, rule, "sampling rule")
        task_of_row = np.asarray(task_of_row)
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        self.rows = [np.flatnonzero(task_of_row == t) for t in range(int(task_of_row.max()) + 1)]
        empty = [t for t, rows in enumerate(self.rows) if not len(rows)]
        if empty:
            raise InputError(f"tasks {empty} have no rows to train on")
        self.batch_size, self.rule, self.temperature, self.seed = (
            batch_size,
            rule,
            temperature,
            seed,
        )
        self.counts = [math.ceil(len(r) / batch_size) for r in self.rows]
        self.epoch = 0

    def __len__(self) -> int:
        return sum(self.counts)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def task_order(self, epoch: int | None = None) -> list[int]:
        """The task of each batch of an epoch."""
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch, 0])
        return SAMPLING[self.rule](self.rows, self.counts, len(self), rng, self.temperature)

    def __iter__(self):
        epoch = self.epoch
        rng = np.random.default_rng([self.seed, epoch, 1])
        order = self.task_order(epoch)
        positions = [0] * len(self.rows)
        shuffled = [rows[rng.permutation(len(rows))] for rows in self.rows]
        for task in order:
            rows, start = shuffled[task], positions[task]
            if start >= len(rows):  # this task ran out (temperature, round_robin): reshuffle
                shuffled[task] = rows = self.rows[task][rng.permutation(len(self.rows[task]))]
                start = 0
            batch = rows[start : start + self.batch_size]
            positions[task] = start + self.batch_size
            yield [int(i) for i in batch]
        self.epoch = epoch + 1  # a loader that never calls set_epoch still varies the order


class TaskBatchLoader:
    """Trainer mixin: training batches from `self.task_batches` (a TaskBatchSampler) when set.

    The batch sampler goes through `accelerator.prepare` like the Trainer's own loader, and the
    Trainer's `set_epoch` reaches it, so resume skips into the same epoch's order.
    """

    task_batches: TaskBatchSampler | None = None

    def get_train_dataloader(self):
        if self.task_batches is None:
            return super().get_train_dataloader()
        from torch.utils.data import DataLoader

        loader = DataLoader(
            self.train_dataset,
            batch_sampler=self.task_batches,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
        )
        return self.accelerator.prepare(loader)

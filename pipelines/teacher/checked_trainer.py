"""The teacher's Trainer: the HF `Trainer`, stopped at the first step whose loss is not finite.

The Trainer's own `logging_nan_inf_filter` leaves NaN losses out of what it logs and trains on;
a learning rate that diverges would then finish "successfully" with a NaN model. Here a
non-finite loss stops training with the step named, before anything is saved.
"""

from __future__ import annotations

import math

from transformers import Trainer

from pipelines.core.errors import DistilleryError


class CheckedTrainer(Trainer):
    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        value = float(loss)
        if not math.isfinite(value):
            raise DistilleryError(
                f"step {self.state.global_step + 1}: the teacher's training loss is {value}. Lower "
                "teacher.learning_rate, or check the data; nothing was saved."
            )
        return loss

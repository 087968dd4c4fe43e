"""How the distill stage (pipelines/stages/distill.py) drives the `distill` library from a recipe.
Named `distillation` because `distill` is the library's import name.

- `student_choice`: which student the recipe asks for (copied layers, a config, cut from the
  teacher, a checkpoint) and the calibration rows pruning ranks weights on;
- `loss`: the recipe's `distill` section → `distill.combined.LossSpec`;
- `auto_defaults`: the distill keys a recipe leaves unset, sized to its train rows (`distill.auto`);
- `augmented_set`: the augmented training rows, made and labelled in resumable chunks;
- `unlabelled_set`: the recipe's unlabelled text (`distill.unlabelled`), labelled the same way;
- `teacher_labels`: the chunked teacher labelling both use;
- `logits`: the teacher-logit cache of a run (`distill.cache`), written by rank 0 under DDP;
- `training`: one distillation with the recipe's TrainingArguments, resuming from checkpoints;
- `ablation`: the same student trained several ways, tabulated;
- `qat_phase`: the quantization-aware phase after distillation (quantize.qat);
- `speedup`: cached vs recomputed teacher logits, timed step for step.
"""

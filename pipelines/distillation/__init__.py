"""How the distill stage drives the `distill` library from a recipe.

- `student`: which student the recipe asks for (copied layers, a config, cut from the teacher, a
  checkpoint) and the calibration rows pruning ranks weights on;
- `loss`: the recipe's `distill` section → `distill.combined.LossSpec`;
- `logits`: the teacher-logit cache of a run (`distill.cache`), written by rank 0 under DDP;
- `training`: one distillation with the recipe's TrainingArguments, resuming from checkpoints;
- `ablation`: the same student trained several ways, tabulated;
- `speedup`: cached vs recomputed teacher logits, timed step for step.
"""

"""Multi-task runs: a target task and source tasks, `L = Σ_t λ_t·L_t` (the recipe's `transfer`
section). The teacher and distill stages run the variants here when `transfer.enabled`
(`Variant("multitask", ...)` in pipelines/run/registry.py): same stage names, sections and hashes.

- tasks.py: the tasks of a recipe (target first), their data and their fingerprint;
- teacher_variant.py: the teacher stage's multi-task training (joint or sequential);
- distill_variant.py: the distill stage's multi-task distillation (one teacher head per task);
- evaluate.py: per-task metrics of a PyTorch model or an exported artifact.

The model side (one head per task on one encoder) is distill/heads.py; the batch sampling rules
are distill/multitask.py; the ONNX graph with one output per task is export/heads.py.
"""

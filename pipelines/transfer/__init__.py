"""Transfer across tasks: a target task and source tasks, `L = Σ_t λ_t·L_t` (recipe `transfer`).

- tasks.py: the tasks of a recipe (target first), their data and their fingerprint;
- teacher.py: the teacher stage's multi-task training (joint or sequential);
- distill.py: the distill stage's multi-task distillation (one teacher head per task);
- evaluate.py: per-task metrics of a PyTorch model or an exported artifact.

The model side (one head per task on one encoder) is distill/heads.py; the batch sampling rules
are distill/multitask.py; the ONNX graph with one output per task is export/heads.py.
"""

"""How the teacher stage (pipelines/stages/teacher.py) and its multi-task variant
(pipelines/multitask/teacher_variant.py) build and train the teacher from a recipe.

- model.py: the teacher model a recipe's `teacher` section describes (pretrained or from a shape);
- checked_trainer.py: the HF `Trainer`, stopped at the first non-finite loss.

Loading any stage's saved model safely is pipelines/core/models.py.
"""

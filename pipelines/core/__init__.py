"""The pipeline's foundations, imported by everything else and importing nothing of it:
the recipe (`schema`, `config`), run folders and manifests (`runs`, `machine`), where models and
data come from (`sources`, `models`), errors, the stage context type, and the few collectives
multi-process runs need (`distributed`)."""

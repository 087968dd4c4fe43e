"""The pipeline's stages, one module each (`teacher`, `distill`, `export`, `quantize`, `bench`,
`report`, `bundle`, each with `main(ctx) -> StageResult`), their registry (`registry`), when a stage
is done (`hashing`), the checks run before any stage (`preflight`) and the runner (`runner`)."""

"""The pipeline's stage bodies, one module each (`teacher`, `search`, `distill`, `export`,
`quantize`, `bench`, `report`, `bundle`), each with `main(ctx) -> StageResult`. What runs them
(the registry, hashing, preflight, the runner) is `pipelines.run`."""

"""Student search: candidates from a space, timed untrained, the survivors distilled briefly, the
pick handed to the distill stage (pipelines/stages/search.py runs it; docs/architecture.md)."""

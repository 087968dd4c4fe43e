"""The runner's machinery, apart from the stage bodies it runs: the registry of stages and
`plan()` (`registry`), when a stage is done (`hashing`), the checks made before any stage trains
(`preflight`), and the runner that visits the plan and writes each manifest (`runner`)."""

"""The task's data: loading and checking splits from the hub, local files or a generator
(`loading`), and the generated tasks of the demo and the tests (`synthetic`)."""

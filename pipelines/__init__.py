"""distillery's pipeline: recipes, data, the stage runner, run folders and the CLI."""

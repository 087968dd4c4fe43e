"""The benchmark report: the rows' schema, which rows compare, the recommendation rule, tables,
the model card, plots, and `assemble.write_report` putting them together."""

"""distillery: distill."""

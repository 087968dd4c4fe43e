"""distillery: export."""

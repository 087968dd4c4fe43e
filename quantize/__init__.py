"""distillery: quantize."""

"""distillery: export.

ONNX export of a fine-tuned classifier (`onnx_export`), ORT graph optimisation O1–O4 (`optimize`),
ORT-vs-reference parity with tolerances (`parity`, reused by quantize), and [CLS] vectors from
the encoder (`features`). Heavy backends (optimum, onnxruntime, torch) are imported inside the
functions that need them. Nothing here imports `pipelines`: the pipeline stage calls this library.
"""

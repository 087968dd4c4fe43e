"""distillery: quantize — int8 quantization of the distilled student.

Library the pipeline's `quantize` stage calls (this package never imports `pipelines` or `export`):

- `presets`: `QuantPreset`, the `PRESETS` registry (`avx512_vnni`, `avx512`, `avx2`, `arm64`),
  `get_preset(name)`, `select_preset(flags, arch)` / `resolve_preset("auto")` for this CPU.
- `ort_dynamic.quantize_dynamic(onnx_path, out_path, preset)`: ONNX Runtime dynamic int8, on the
  plain export or an optimum O1–O3 fused graph.
- `ort_static.quantize_static(onnx_path, out_path, rows, method=..., samples=..., preset=...)`:
  ONNX Runtime static QDQ int8, calibrated batch by batch (minmax, percentile, entropy).
- `inc.inc_quantize(model, calib_batches, eval_fn, out_dir=...)`: Intel Neural Compressor PT2E
  int8 with autotune; `inc.load_inc_model(out_dir)` rebuilds the saved artifact.
- `methods`: the `METHODS` registry the quantize stage loops over (dynamic, static, inc, openvino,
  and the distill stage's QAT export): each entry's function, what it needs, which runtime runs it.
- `gate.gate(accuracies, reference_accuracy, max_drop_points)`: reject methods that lose too much
  accuracy; `QuantizationGateError` when none passes.

Submodules import their backends (onnxruntime, neural_compressor) themselves; importing this
package costs nothing.
"""

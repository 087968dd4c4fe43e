"""modelkit: what the libraries `distill`, `export` and `quantize` share about encoder classifiers.

- `families`: the registry of supported encoder families (BERT, RoBERTa, ...) and the check that
  names them when a model is not one;
- `batching`: right-padded batches of tokenized rows (the one padding rule every inference path
  here uses: fused ONNX Attention reads the mask as per-row lengths, exact for right padding only);
- `onnx_graph`: op counts and graph inputs of an ONNX file;
- `files`: which files of a model folder are weights, ONNX graphs, or config and tokenizer;
- `errors`: `InputError`, raised for input the caller can fix (the pipeline turns exactly these
  into one-line messages; any other exception is a bug and keeps its traceback).

It imports nothing heavy at the top and never imports `pipelines`, `distill`, `export` or
`quantize`: they all import it.
"""

"""The edge bundle: building it (`writer`), its model card (`card`), checking it (`verify`), and
`files/predict.py`, the runner copied into every bundle; the same bundle in Node, a browser and
ORT Mobile (`runtimes`, with `files/predict.mjs` and `files/index.html`)."""

"""The edge bundle: building it (`writer`), its model card (`card`), checking it (`verify`), and
`files/predict.py`, the runner copied into every bundle."""

"""ONNX Runtime Mobile: the bundle's model.onnx as model.ort, with the operators a reduced build
of ONNX Runtime needs to run it (model.required_operators.config), both made by onnxruntime's
own converter (onnxruntime.tools.convert_onnx_models_to_ort). The check that onnxruntime runs
model.ort to predict.py's answers is in pipelines/bundle/runtimes.py.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import tempfile
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

from pipelines.bundle.verify import BundleError, settings_name

log = logging.getLogger("distillery")

ORT_FILES = ("model.ort", "model.required_operators.config")


def build_ort(out: Path) -> dict[str, Any]:
    """model.ort and model.required_operators.config from the bundle's model.onnx, by
    onnxruntime's own converter, optimisations fixed for ARM (the phones ORT Mobile targets)."""
    import onnxruntime
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    with tempfile.TemporaryDirectory(prefix="distillery-ort-") as tmp:
        for name in ("model.onnx", "model.onnx_data"):  # external weights travel with the graph
            if (out / name).is_file():
                shutil.copy2(out / name, Path(tmp) / name)
        said = io.StringIO()  # the converter prints each step: log.txt keeps them, not the console
        try:
            with redirect_stdout(said):
                convert_onnx_models_to_ort(
                    Path(tmp), optimization_styles=[OptimizationStyle.Fixed], target_platform="arm"
                )
        except Exception as exc:  # the converter raises bare RuntimeErrors from ORT
            raise BundleError(f"{out}/model.onnx: ORT format conversion failed: {exc}") from exc
        finally:
            log.info("ORT format converter: %s", " | ".join(said.getvalue().split("\n")).strip())
        shutil.copy2(Path(tmp) / "model.ort", out / ORT_FILES[0])
        ops = (Path(tmp) / "required_operators.config").read_text()
    # the converter names its temporary folder in a comment: keep the file reproducible
    ops = "\n".join(line for line in ops.splitlines() if not line.startswith("#"))
    (out / ORT_FILES[1]).write_text(f"# Generated from model/s:\n# - model.ort\n{ops}\n")
    return {"onnxruntime": onnxruntime.__version__, "operators": operator_sets(ops)}


def operator_sets(config_text: str) -> dict[str, list[str]]:
    """{"domain;opset": [ops]} from a required_operators.config."""
    sets = {}
    for line in config_text.splitlines():
        if line.strip() and not line.startswith("#"):
            domain, opset, ops = line.split(";")
            sets[f"{domain};{opset}"] = ops.split(",")
    return sets


@contextmanager
def ort_as_model(bundle: Path):
    """A copy of the bundle whose settings (distillery.json) name model.ort: predict.py runs it unchanged."""
    with tempfile.TemporaryDirectory(prefix="distillery-ort-") as tmp:
        copy = Path(tmp) / "bundle"
        shutil.copytree(bundle, copy, ignore=shutil.ignore_patterns("model.onnx*"))
        settings = copy / settings_name(copy)
        config = json.loads(settings.read_text())
        settings.write_text(json.dumps({**config, "model": "model.ort"}))
        yield copy

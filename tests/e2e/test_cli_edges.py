"""The CLI's rough edges (issue 29, point 6): version, bare command, --set before the recipe,
a closed pipe, third-party noise, file modes, the quantize stage's description, the GPU skip."""

import os
import subprocess
import sys
import textwrap

import pytest
import tomllib

from pipelines import cli
from pipelines.core import quiet
from tests.conftest import ROOT


def run_cli(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version_is_the_package_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"distillery {project['version']}"


def test_bare_command_prints_the_help_not_an_error(capsys):
    assert cli.main([]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("usage: distillery") and "validate" in out and "keys" in out
    assert "error" not in out + err


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "--set", "name=edge-a", "teacher.epochs=1", "RECIPE"],
        ["validate", "RECIPE", "--set", "name=edge-a", "teacher.epochs=1"],
        ["validate", "--set", "name=edge-a", "--set", "teacher.epochs=1", "RECIPE"],
    ],
)
def test_set_before_the_recipe_keeps_the_recipe(argv, tmp_path, capsys):
    from tests.conftest import tiny_recipe, write_recipe

    recipe = str(write_recipe(tmp_path / "r.yaml", tiny_recipe()))
    assert cli.main([recipe if a == "RECIPE" else a for a in argv]) == 0
    assert f"{recipe}: valid (run 'edge-a'" in capsys.readouterr().out


def test_set_help_says_where_the_list_ends(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    assert "ends at the first word without '='" in " ".join(capsys.readouterr().out.split())


def test_closed_pipe_ends_quietly():
    """`distillery keys | head`: the reader is gone before the first write."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "keys"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # every write the command makes now fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


def test_quantize_stage_description_names_openvino(capsys):
    assert cli.main(["stages"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("quantize"))
    assert "OpenVINO" in line and "Neural Compressor" in line


def test_gpu_table_gives_openvinos_own_reason(tmp_path):
    from pipelines.bench.artifacts import Artifact
    from pipelines.bench.gpu import gpu_rows

    ov = Artifact("student-openvino-int8", "openvino", str(tmp_path), precision="int8")
    (row,) = gpu_rows([ov], [1], [8])
    assert "OpenVINO runs on the CPU here" in row["skipped"]
    assert "INC" not in row["skipped"] and "PT2E" not in row["skipped"]


def test_written_files_are_readable_by_others_and_follow_the_umask(tmp_path):
    from pipelines.core.runs import atomic_write_json

    previous = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "results.json", {"a": 1})
        os.umask(0o027)
        atomic_write_json(tmp_path / "manifest.json", {"a": 1})
    finally:
        os.umask(previous)
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "manifest.json").stat().st_mode & 0o777 == 0o640
    assert not list(tmp_path.glob(".*.tmp"))


# Each line of third-party noise from its real source, then a warning of ours and one from
# elsewhere that must still show.
NOISE_SCRIPT = textwrap.dedent(
    """
    import logging, sys, warnings
    from pipelines.core import quiet

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet.install(verbose=sys.argv[1] == "verbose")
    warnings.simplefilter("default")
    import torchao  # "Failed to load ... _C_mxfp8" and torch's _pytree notices, if this build has them
    import torch
    from transformers import PretrainedConfig
    PretrainedConfig().torch_dtype  # an old checkpoint's key read by new transformers
    warnings.warn("Converting a tensor to a Python boolean", torch.jit.TracerWarning)
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np
    from onnxruntime.quantization import quantize_dynamic
    weight = numpy_helper.from_array(np.ones((4, 4), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, sys.argv[2] + "/m.onnx")
    quantize_dynamic(sys.argv[2] + "/m.onnx", sys.argv[2] + "/q.onnx")
    logging.getLogger("distillery").warning("OUR WARNING")
    logging.warning("ANOTHER ROOT WARNING")
    warnings.warn("ANOTHER USER WARNING")
    """
)
NOISE = (
    "Please consider to run pre-processing",
    "`torch_dtype` is deprecated",
    "TracerWarning",
)


@pytest.mark.slow
def test_third_party_noise_is_hidden_unless_verbose(tmp_path):
    script = tmp_path / "noise.py"
    script.write_text(NOISE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shown = {}
    for mode in ("quiet", "verbose"):
        done = subprocess.run(
            [sys.executable, str(script), mode, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        shown[mode] = done.stderr
    for line in ("OUR WARNING", "ANOTHER ROOT WARNING", "ANOTHER USER WARNING"):
        assert line in shown["quiet"] and line in shown["verbose"]
    for line in NOISE:
        assert line in shown["verbose"], line  # the script really makes it...
        assert line not in shown["quiet"], line  # ...and quiet hides it
    for line in ("Failed to load", "_pytree"):  # present only where torchao's build has them
        assert line not in shown["quiet"], line


def test_cli_installs_the_filters_and_verbose_removes_them(capsys):
    import warnings

    try:
        assert cli.main(["stages"]) == 0
        assert quiet._installed and any(quiet._is_ours(f[1]) for f in warnings.filters)
        assert cli.main(["--verbose", "stages"]) == 0
        assert not quiet._installed and not any(quiet._is_ours(f[1]) for f in warnings.filters)
    finally:
        quiet.uninstall()

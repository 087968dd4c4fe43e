"""How a bench worker loads each backend: one loader per backend, named by the registry
`pipelines.bench.backends.BACKENDS`.

A loader takes the job (artifact path, precision, device, threads, ...) and returns a `Runner`:
`feed(arrays)` turns numpy int64 inputs into what `run(inputs)` takes, `sync()` waits for the
device. To add a backend, add its loader here and its entry to BACKENDS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from modelkit.batching import MODEL_INPUTS

SEED = 0  # input ids are drawn from this seed, the same for every artifact and cell
# OpenVINO: one compiled model per shape (True) or one for dynamic shapes (False). Measured on
# the tiny student (docs/benchmarks.md, "Real lengths"): see there for the figures.
OV_STATIC_SHAPES = True


class Runner:
    """A loaded model: `feed(arrays)` turns numpy int64 inputs into what `run(feed)` takes."""

    def __init__(
        self,
        run: Callable[[Any], Any],
        feed: Callable[[dict[str, Any]], Any],
        input_names: list[str],
        sync: Callable[[], None] = lambda: None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.run = run
        self.feed = feed
        self.input_names = input_names
        self.sync = sync
        self.info = info or {}


def skip_unused_transformers_extras() -> None:
    """Tell transformers that scikit-learn and torchao are absent, in this worker process only.

    When installed (nncf brings scikit-learn, neural-compressor torchao), transformers imports
    both with its model classes: scikit-learn (with SciPy) for assisted generation's ROC curve,
    torchao for torchao-quantized checkpoints, ~2.5 s of the ~8 s a torch worker takes to start
    on 2 cores, and ~100 MB of its resident memory. A classifier's forward uses neither. The flags
    are read when the model modules are first imported, so this runs before that. Written by
    hand: transformers has no switch for it; if a flag is renamed, the import is as before.
    """
    from transformers.utils import import_utils

    for flag in ("_sklearn_available", "_torchao_available"):
        if hasattr(import_utils, flag):
            setattr(import_utils, flag, False)


def load_torch(job: dict[str, Any]) -> Runner:
    import contextlib
    import inspect

    import torch

    skip_unused_transformers_extras()  # a worker process of its own (worker.py)
    from pipelines.core.models import head_class, saved_head

    device = torch.device(job["device"])
    model_class = head_class(saved_head(job["path"]), "AutoModel")  # a token head or not
    model = model_class.from_pretrained(job["path"]).eval().to(device)
    params = inspect.signature(model.forward).parameters
    names = [n for n in MODEL_INPUTS if n in params]
    if job["precision"] == "bf16":
        autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16)  # noqa: E731
    elif job["precision"] == "fp32":
        autocast = contextlib.nullcontext
    else:
        raise ValueError(f"torch backend runs fp32 or bf16 (autocast), not {job['precision']!r}")

    def run(inputs: dict[str, Any]) -> Any:
        with torch.inference_mode(), autocast():
            return model(**inputs).logits

    def feed(arrays: dict[str, Any]) -> dict[str, Any]:
        return {k: torch.from_numpy(arrays[k]).to(device) for k in names}

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    return Runner(run, feed, names, sync)


def load_inc(job: dict[str, Any]) -> Runner:
    import torch

    from quantize.inc import load_inc_model

    if job["device"] != "cpu":
        raise ValueError("INC's PT2E int8 graph runs on CPU only (X86InductorQuantizer)")
    model = load_inc_model(job["path"])
    names = list(model.input_names)
    info: dict[str, Any] = {"compiled": False}
    if job.get("inc_compile", True):
        # INC's PT2E graph is a quantize/dequantize reference graph: eager, it runs every matmul
        # in fp32 plus the QDQ overhead (INC logs "please compile it to accelerate inference").
        # Inductor lowers it to fused int8 kernels; `freezing` folds the weights' quantization.
        # dynamic=True: one graph for every batch × seq cell and the real-length batches.
        from torch._inductor import config as inductor_config

        inductor_config.freezing = True
        started = time.perf_counter()
        model = torch.compile(model, dynamic=True)
        with torch.no_grad():  # compile here, not in a timed run: a size-1 dim is specialised
            for batch, seq in ((2, 16), (1, 16), (2, 1)):
                arrays = random_inputs(batch, seq, job.get("vocab_size", 1000))
                model(**{k: torch.from_numpy(arrays[k]) for k in names})
        info = {"compiled": True, "compile_s": time.perf_counter() - started}

    def run(inputs: dict[str, Any]) -> Any:
        with torch.no_grad():
            return model(**inputs)

    def feed(arrays: dict[str, Any]) -> dict[str, Any]:
        return {k: torch.from_numpy(arrays[k]) for k in names}

    return Runner(run, feed, names, info=info)


def load_ort(job: dict[str, Any]) -> Runner:
    """An ORT session; on the GPU the job names the EP (CUDA or TensorRT, see pipelines.bench.gpu),
    `fp16` converts the fp32 graph at load, and `io_binding` keeps inputs and logits on the device.
    """
    from pathlib import Path

    import numpy as np
    import onnxruntime as ort

    from pipelines.bench.gpu import CUDA_EP, TRT_EP, to_fp16

    path = Path(job["path"])
    if path.is_dir():
        path = path / "model.onnx"
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(job["threads"])
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    cuda = job["device"] == "cuda"
    provider = (job.get("provider") or CUDA_EP) if cuda else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        raise RuntimeError(
            f"onnxruntime has no {provider} here; pip install -e .[gpu] (onnxruntime-gpu) on a "
            "CUDA machine" + (" with the TensorRT libraries" if provider == TRT_EP else "")
        )
    providers: list[Any] = [(provider, job.get("provider_options") or {})]
    if provider == TRT_EP:
        providers.append(CUDA_EP)  # what TensorRT does not take runs on the CUDA EP
    if provider != "CPUExecutionProvider":
        providers.append("CPUExecutionProvider")
    if job.get("fp16") and job["precision"] != "fp16":
        raise ValueError(f"fp16 conversion asked for a {job['precision']} row")
    source = to_fp16(path).SerializeToString() if job.get("fp16") else str(path)
    session = ort.InferenceSession(source, options, providers=providers)
    if session.get_providers()[0] != provider:
        raise RuntimeError(f"ORT fell back to {session.get_providers()} instead of {provider}")
    kinds = {i.name: i.type for i in session.get_inputs()}
    unknown = sorted(set(kinds) - set(MODEL_INPUTS))
    if unknown:
        raise ValueError(f"{path}: graph inputs {unknown} are not text-classifier inputs")
    types = {"tensor(int32)": np.int32}
    names = list(kinds)
    output = [session.get_outputs()[0].name]
    info = {"providers": session.get_providers(), "io_binding": False}

    def feed(arrays: dict[str, Any]) -> dict[str, Any]:
        return {k: arrays[k].astype(types.get(kinds[k], np.int64), copy=False) for k in names}

    if not (cuda and job.get("io_binding")):
        return Runner(lambda inputs: session.run(output, inputs), feed, names, info=info)

    def feed_device(arrays: dict[str, Any]) -> Any:
        """Inputs copied to GPU 0 once; the binding also allocates the logits there."""
        binding = session.io_binding()
        for name, array in feed(arrays).items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
        binding.bind_output(output[0], "cuda", 0)
        return binding

    # run_with_iobinding returns once the GPU work is done (ORT synchronises the EP's stream at
    # the end of a run), so the timer needs no other sync.
    info["io_binding"] = True
    return Runner(session.run_with_iobinding, feed_device, names, info=info)


def load_openvino(job: dict[str, Any]) -> Runner:
    """OpenVINO's CPU plugin at `INFERENCE_PRECISION_HINT: f32` (the precision its accuracy was
    measured in). Static shapes (the default, `OV_STATIC_SHAPES`): one model compiled per input
    shape on its first run, kept (`OVClassifier`, rows right-padded to a multiple of 16), so a
    cell compiles in its warm-up and a real-length pass once per bucket width, before the timer;
    `job["static_shapes"] = False` compiles once for dynamic shapes instead."""
    from quantize.openvino import OVClassifier

    if job["device"] != "cpu":
        raise ValueError("the OpenVINO backend runs on the CPU here")
    static = bool(job.get("static_shapes", OV_STATIC_SHAPES))
    model = OVClassifier(job["path"], threads=int(job["threads"]), static_shapes=static)
    # what the plugin reports it runs at (not just what was asked): f32, as the gate measured
    info = {"precision_hint": model.precision(), "static_shapes": static}
    return Runner(model.logits, lambda arrays: arrays, model.input_names, info=info)


def random_inputs(batch: int, seq: int, vocab_size: int, seed: int = SEED) -> dict[str, Any]:
    """int64 `[batch, seq]` ids drawn from `seed` in [0, vocab_size), a full mask, zero types."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(0, max(int(vocab_size), 1), size=(batch, seq), dtype=np.int64)
    return {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "token_type_ids": np.zeros_like(ids),
    }

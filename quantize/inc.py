"""Intel Neural Compressor (neural-compressor-pt 3.x) int8 for a PyTorch classifier, with autotune.

    result = inc_quantize(model, calib_batches, eval_fn, out_dir="run/inc", tolerable_loss=0.01)
    qmodel = load_inc_model("run/inc")          # qmodel(**batch) -> logits

What runs here (neural-compressor-pt 3.10, torch 2.13 CPU, no IPEX): the PT2E path. The model is
exported with `neural_compressor.torch.export.export` (torch.export, dynamic batch and sequence
dims), then `INT8StaticQuantConfig` (static: observers, calibration, convert) or
`DynamicQuantConfig` quantize it through torchao's X86InductorQuantizer (INC imports it from
torchao for torch >= 2.11). Without IPEX, INC routes StaticQuantConfig/INT8StaticQuantConfig to
PT2E; IPEX's path is deprecated in INC and not installed. The result is a QDQ FX graph: it is
accurate int8 numerics but runs at fp32 speed until `torch.compile` lowers it (INC logs
"Converted the model in qdq mode, please compile it to accelerate inference").

`autotune` tries the configs in order, stops at the first within `tolerable_loss` (relative:
accept if acc >= baseline * (1 - tolerable_loss)), and returns the best model. It does not tell
which config won or what each scored, and when it misses its goal it may return None
(neural-compressor #2261; in 3.10 `init_tuning` caps max_trials at the number of configs, so it
returns the best model instead). We therefore wrap `eval_fn` to record every trial and keep the
best model ourselves; if autotune raises, the remaining configs are tried one by one.

The artifact is rebuilt, not unpickled. `torch.export.save` would keep the graph, but
`torch.export.load` unpickles parts of the archive (sample inputs fall back to
`torch.load(weights_only=False)`), which we never do on files that may come from elsewhere. We save
instead: the fp32 model (`save_pretrained`, safetensors), the calibration batches and a reference
output (safetensors), and the recipe (JSON). `load_inc_model` re-exports, re-calibrates with the
same batches (min/max and histogram observers are deterministic) and checks the logits match.

Why one module: exporting, autotuning, saving and rebuilding must agree on one input order, one
file layout and one set of calibration batches; split apart, each half would re-state them.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from modelkit.errors import InputError
from quantize.inc_configs import DEFAULT_CONFIGS, INC_CONFIGS, get_inc_config

INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")  # positional order of the graph
INC_LOGGER = "neural_compressor"
RECIPE_FILE = "inc_recipe.json"
RESULT_FILE = "inc_result.json"
TENSORS_FILE = "inc_tensors.safetensors"
FP32_DIR = "fp32"


# ---------------------------------------------------------------- model plumbing


class _LogitsOnly(torch.nn.Module):
    """HF classifier → module taking the inputs positionally (INPUT_ORDER) and returning logits."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        return self.model(**inputs).logits


class InputsByName(torch.nn.Module):
    """Call an exported graph as `model(**batch)` (extra keys such as labels ignored) → logits.

    Exported graphs take their inputs positionally; this is what `eval_fn` receives and what
    `load_inc_model` returns. Positional calls pass straight through.
    """

    def __init__(self, graph: torch.nn.Module, input_names: list[str]) -> None:
        super().__init__()
        self.graph = graph
        self.input_names = list(input_names)

    def forward(self, *args: torch.Tensor, **batch: torch.Tensor) -> torch.Tensor:
        if args:
            return self.graph(*args)
        return self.graph(*_positional(batch, self.input_names))


def _positional(batch: Mapping[str, Any], input_names: list[str]) -> tuple[torch.Tensor, ...]:
    """The batch's tensors in graph order; a missing attention mask is all ones, types all zeros."""
    if "input_ids" not in batch:
        raise ValueError(f"batch has no input_ids (keys: {sorted(batch)})")
    ids = torch.as_tensor(batch["input_ids"], dtype=torch.long)
    out = []
    for name in input_names:
        if name == "input_ids":
            out.append(ids)
        elif name in batch:
            out.append(torch.as_tensor(batch[name], dtype=torch.long))
        elif name == "attention_mask":
            out.append(torch.ones_like(ids))
        else:  # token_type_ids
            out.append(torch.zeros_like(ids))
    return tuple(out)


def _input_names(batch: Mapping[str, Any]) -> list[str]:
    """Graph inputs: input_ids and attention_mask always, token_type_ids when the data has them."""
    return [n for n in INPUT_ORDER if n != "token_type_ids" or n in batch]


def _example(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """An export example with batch >= 2: torch.export specialises dims of size 1."""
    if batch[0].shape[0] >= 2:
        return batch
    return tuple(torch.cat([t, t]) for t in batch)


def _export(
    model: torch.nn.Module, example: tuple[torch.Tensor, ...], input_names: list[str]
) -> torch.nn.Module:
    """torch.export the logits-only wrapper with dynamic batch and sequence dims, for PT2E."""
    from neural_compressor.torch.export import export

    max_len = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    batch = torch.export.Dim("batch", min=1)
    seq = torch.export.Dim("seq", min=2, max=max_len) if max_len else torch.export.Dim("seq", min=2)
    shapes = tuple({0: batch, 1: seq} for _ in input_names)
    return export(_LogitsOnly(model.eval()), example, dynamic_shapes=shapes)


def _calibrator(batches: list[tuple[torch.Tensor, ...]]) -> Callable[[torch.nn.Module], None]:
    """run_fn for INC: feed every calibration batch once."""

    @torch.no_grad()
    def run_fn(model: torch.nn.Module) -> None:
        for batch in batches:
            model(*batch)

    return run_fn


@contextlib.contextmanager
def _quiet_inc(level: int = logging.WARNING) -> Iterator[None]:
    """INC logs every step at INFO; keep warnings and errors only while we run it."""
    logger = logging.getLogger(INC_LOGGER)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


class _Trials:
    """eval_fn wrapper: the first call is the fp32 baseline, later calls are candidates.

    Records each candidate's accuracy and keeps the most accurate model (autotune does not
    expose either). A candidate is named by matching its `qconfig` (set by INC's PT2E entries)
    against the configs tried; without one, by trial order.
    """

    def __init__(
        self,
        eval_fn: Callable[[torch.nn.Module], float],
        input_names: list[str],
        names: list[str],
        configs: list[Any],
    ) -> None:
        self.eval_fn = eval_fn
        self.input_names = input_names
        self.names = names
        self.dicts = [cfg.to_dict() for cfg in configs]
        self.baseline: float | None = None
        self.candidates: list[dict] = []
        self.best_model: torch.nn.Module | None = None

    def _name_of(self, model: torch.nn.Module) -> str:
        tried = {c["config"] for c in self.candidates}
        qconfig = getattr(model, "qconfig", None)
        for cfg in qconfig.values() if isinstance(qconfig, Mapping) else ():
            as_dict = cfg.to_dict() if hasattr(cfg, "to_dict") else None
            for name, known in zip(self.names, self.dicts, strict=True):
                if as_dict == known and name not in tried:
                    return name
        return next(name for name in self.names if name not in tried)

    def __call__(self, model: torch.nn.Module) -> float:
        accuracy = float(self.eval_fn(InputsByName(model, self.input_names)))
        if self.baseline is None:
            self.baseline = accuracy
            return accuracy
        name = self._name_of(model)
        self.candidates.append({"config": name, "accuracy": accuracy})
        earlier = [c["accuracy"] for c in self.candidates[:-1] if c.get("accuracy") is not None]
        if accuracy > max(earlier, default=-float("inf")):
            self.best_model = model
        return accuracy


# ---------------------------------------------------------------- quantize, save, load


def inc_quantize(
    model: torch.nn.Module,
    calib_batches: Iterable[Mapping[str, Any]],
    eval_fn: Callable[[torch.nn.Module], float],
    *,
    out_dir: str | Path,
    tolerable_loss: float = 0.01,
    max_trials: int | None = None,
    configs: Iterable[str] = DEFAULT_CONFIGS,
) -> dict:
    """Autotune INC int8 configs on a HF classifier; save the best candidate, goal met or not.

    `calib_batches`: a few padded batches (dicts of input_ids/attention_mask[/token_type_ids]
    tensors), fed once per static candidate. `eval_fn(model) -> accuracy` gets a module called
    as `model(**batch)` returning logits; it is called once on the fp32 model (the baseline) and
    once per candidate. `tolerable_loss` is relative, as INC defines it. `max_trials=None` tries
    every config in `configs` (names from `INC_CONFIGS`). Returns (and writes to
    `out_dir/inc_result.json`) the baseline, every candidate's accuracy, the best one and
    `met_tolerance`. Reload the artifact with `load_inc_model(out_dir)`.

    Why one function: autotune and the fallback loop after it fill the same trials from the same
    configs, export and calibration batches, and the record reads what both left.
    """
    names = list(configs)
    if not names:
        raise InputError(f"configs is empty; choose from {sorted(INC_CONFIGS)}")
    quant_configs = [get_inc_config(name) for name in names]
    if not 0.0 <= tolerable_loss < 1.0:
        raise InputError(f"tolerable_loss is a relative loss in [0, 1), got {tolerable_loss}")
    if max_trials is not None and max_trials < 1:
        raise ValueError(f"max_trials must be >= 1 or None (all configs), got {max_trials}")
    if not hasattr(model, "save_pretrained"):
        raise TypeError(
            f"inc_quantize needs a Hugging Face PreTrainedModel (it saves the fp32 weights with "
            f"save_pretrained), got {type(model).__name__}"
        )
    raw = list(calib_batches)
    if not raw:
        raise ValueError("calib_batches is empty; pass at least one tokenized batch")
    input_names = _input_names(raw[0])
    batches = [_positional(b, input_names) for b in raw]
    example = _example(batches[0])
    out_dir = Path(out_dir)

    from neural_compressor.torch.quantization import TuningConfig, autotune, quantize

    trials = _Trials(eval_fn, input_names, names, quant_configs)
    run_fn = _calibrator(batches)
    autotune_error = None
    with _quiet_inc(), torch.no_grad():
        exported = _export(model, example, input_names)
        try:
            returned = autotune(
                exported,
                TuningConfig(
                    config_set=quant_configs,
                    tolerable_loss=tolerable_loss,
                    max_trials=max_trials or len(names),
                ),
                eval_fn=trials,
                run_fn=run_fn,
                example_inputs=example,
            )
        except Exception as error:  # any INC failure: fall back to our own loop
            returned, autotune_error = None, f"{type(error).__name__}: {error}"
            if trials.baseline is None:
                trials(exported)
            limit = max_trials or len(names)
            for name, cfg in zip(names, quant_configs, strict=True):
                if len(trials.candidates) >= limit:
                    break
                if any(c["config"] == name for c in trials.candidates):
                    continue
                try:
                    q_model = quantize(
                        _export(model, example, input_names),
                        quant_config=cfg,
                        run_fn=run_fn,
                        example_inputs=example,
                        inplace=True,
                    )
                except Exception as inner:  # record and try the next config
                    trials.candidates.append(
                        {
                            "config": name,
                            "accuracy": None,
                            "error": f"{type(inner).__name__}: {inner}",
                        }
                    )
                    continue
                trials(q_model)

    scored = [c for c in trials.candidates if c.get("accuracy") is not None]
    if not scored or trials.best_model is None:
        raise RuntimeError(
            f"no INC candidate could be quantized and evaluated (autotune: {autotune_error}; "
            f"candidates: {trials.candidates})"
        )
    baseline = trials.baseline
    best = max(scored, key=lambda c: c["accuracy"])  # first of equals: the earlier (faster) config
    goal = baseline - abs(baseline) * tolerable_loss  # a Pearson r baseline may be negative
    for c in scored:
        c["relative_loss"] = (baseline - c["accuracy"]) / abs(baseline) if baseline else None
        c["met_tolerance"] = c["accuracy"] >= goal
    best_cfg = quant_configs[names.index(best["config"])]

    result = {
        "backend": "neural_compressor.torch (PT2E, torchao X86InductorQuantizer)",
        "baseline_accuracy": baseline,
        "tolerable_loss": tolerable_loss,
        "goal_accuracy": goal,
        "met_tolerance": best["accuracy"] >= goal,
        "best": best,
        "candidates": trials.candidates,
        "configs_tried": [c["config"] for c in trials.candidates],
        "autotune_returned_model": returned is not None,
        "autotune_error": autotune_error,
        "input_names": input_names,
        "out_dir": str(out_dir),
        "load_with": f"quantize.inc.load_inc_model({str(out_dir)!r})",
    }
    _save(out_dir, model, trials.best_model, best["config"], best_cfg, batches, example, result)
    return result


def _versions() -> dict[str, str]:
    """Library versions the artifact was made with (re-calibration must match them)."""
    from importlib.metadata import version

    return {pkg: version(pkg) for pkg in ("torch", "neural_compressor_pt", "transformers")}


def _save(
    out_dir: Path,
    model: torch.nn.Module,
    q_model: torch.nn.Module,
    name: str,
    config: Any,
    batches: list[tuple[torch.Tensor, ...]],
    example: tuple[torch.Tensor, ...],
    result: dict,
) -> None:
    """Write fp32 weights, tensors (calibration + reference output) and recipe, all pickle-free."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir / FP32_DIR, safe_serialization=True)
    with torch.no_grad():
        reference = q_model(*example)
    tensors = {f"reference.{i}": t.clone() for i, t in enumerate(example)}
    tensors["reference.logits"] = reference.detach().clone()
    for b, batch in enumerate(batches):
        for i, t in enumerate(batch):
            tensors[f"calib.{b}.{i}"] = t.clone()
    save_file(tensors, str(out_dir / TENSORS_FILE))
    recipe = {
        "config": name,
        "config_class": type(config).__name__,
        "config_dict": config.to_dict(),
        "input_names": result["input_names"],
        "calibration_batches": len(batches),
        "versions": _versions(),
        "accuracy": result["best"]["accuracy"],
        "met_tolerance": result["met_tolerance"],
    }
    (out_dir / RECIPE_FILE).write_text(json.dumps(recipe, indent=2, default=str) + "\n")
    (out_dir / RESULT_FILE).write_text(json.dumps(result, indent=2, default=str) + "\n")


def load_inc_model(out_dir: str | Path, *, check: bool = True) -> InputsByName:
    """Rebuild the saved INC int8 model: fp32 weights → export → same config and calibration.

    Reads only JSON and safetensors. With `check`, the rebuilt model's logits on the saved
    reference batch must match those saved at quantization time (else RuntimeError: library
    versions differ from the ones in the recipe, or the files were changed).
    """
    from neural_compressor.torch.quantization import quantize
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    out_dir = Path(out_dir)
    recipe_path = out_dir / RECIPE_FILE
    if not recipe_path.is_file():
        raise FileNotFoundError(
            f"no {RECIPE_FILE} in {out_dir}; pass the out_dir that inc_quantize wrote"
        )
    recipe = json.loads(recipe_path.read_text())
    config = type(get_inc_config(recipe["config"])).from_dict(recipe["config_dict"])
    input_names = list(recipe["input_names"])
    tensors = load_file(str(out_dir / TENSORS_FILE))
    n = len(input_names)
    example = tuple(tensors[f"reference.{i}"] for i in range(n))
    batches = [
        tuple(tensors[f"calib.{b}.{i}"] for i in range(n))
        for b in range(recipe["calibration_batches"])
    ]
    model = AutoModelForSequenceClassification.from_pretrained(
        out_dir / FP32_DIR, use_safetensors=True, local_files_only=True
    )
    with _quiet_inc(), torch.no_grad():
        q_model = quantize(
            _export(model, example, input_names),
            quant_config=config,
            run_fn=_calibrator(batches),
            example_inputs=example,
            inplace=True,
        )
        if check:
            logits = q_model(*example)
            expected = tensors["reference.logits"]
            if not torch.allclose(logits, expected, atol=1e-5, rtol=1e-4):
                diff = (logits - expected).abs().max().item()
                raise RuntimeError(
                    f"rebuilt INC model in {out_dir} differs from the saved one (max |Δlogit| "
                    f"{diff:.3g}); it was made with {recipe['versions']}, this is "
                    f"{_versions()}. Re-run inc_quantize with these versions."
                )
    return InputsByName(q_model, input_names)

"""Parity of an exported (or quantized) classifier against its reference, with tolerances.

`onnx_logits` and `torch_logits` run the same right-padded batches, in the dataset's row order, so
their outputs line up row by row; `compare` turns two logit arrays into a `ParityReport`, and
`check` raises `ParityError` when the report misses its tolerances. The export stage gates on the
recipe's `export.atol` (1e-4 plain, `optimized_atol` 1e-3 fused) and `export.min_agreement`
(0.999); the quantize stage records reports without a logit tolerance (int8 is lossy by design)
and gates on accuracy instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelkit.batching import MODEL_INPUTS, concat_logits, padded_batches
from modelkit.task_types import TASK_TYPES

_ORT_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


class ParityError(ValueError):
    """A candidate's logits or predictions differ from the reference's beyond the tolerances."""


@dataclass
class ParityReport:
    """Reference vs candidate on `rows` rows. accuracy_delta = candidate − reference, in [−1, 1]."""

    rows: int
    max_abs_diff: float
    mean_abs_diff: float
    agreement: float  # fraction of rows whose argmax matches
    accuracy_reference: float
    accuracy_candidate: float
    accuracy_delta: float
    atol: float | None  # None: logit differences are reported, not checked (lossy artifacts)
    min_agreement: float
    passed: bool
    max_accuracy_drop: float | None = None  # None: accuracy is reported, not checked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    reference_logits: np.ndarray,
    candidate_logits: np.ndarray,
    labels: np.ndarray,
    *,
    atol: float | None,
    min_agreement: float,
    max_accuracy_drop: float | None = None,
    task_type: str = "single_label",
    names: list[str] | None = None,
) -> ParityReport:
    """Logits `[rows, num_labels]` of both, labels `[rows]` (multi-label: `[rows, num_labels]`;
    token classification: logits `[rows, tokens, num_labels]`, labels `[rows, tokens]` with
    -100 where no word starts, and the tag `names`) → a ParityReport. Agreement and accuracy are the task type's (`modelkit.task_types`: argmax,
    the set of labels over 0.5, or the value within 1% of the range; accuracy, micro-F1, Pearson).

    Passes when max |Δlogit| ≤ atol (skipped if None), argmax agreement ≥ min_agreement, and
    accuracy_reference − accuracy_candidate ≤ max_accuracy_drop (skipped if None).
    """
    ref = np.asarray(reference_logits, dtype=np.float64)
    cand = np.asarray(candidate_logits, dtype=np.float64)
    labels = np.asarray(labels)
    kind = TASK_TYPES[task_type]
    dims = 3 if kind.token_level else 2  # token classification: [rows, tokens, labels]
    if ref.shape != cand.shape or ref.ndim != dims or labels.shape[:1] != ref.shape[:1]:
        raise ValueError(
            f"compare: expected reference and candidate logits "
            f"{'[rows, tokens, num_labels]' if kind.token_level else '[rows, num_labels]'} and "
            f"labels [rows{', tokens' if kind.token_level else ''}]; got {ref.shape}, "
            f"{cand.shape} and {labels.shape}"
        )
    if len(ref) == 0:
        raise ValueError("compare: no rows to compare; pass a non-empty evaluation split.")
    diff = np.abs(ref - cand)
    if kind.token_level:  # the tagged pieces only: padding's logits are not outputs anyone reads
        diff = diff[labels != -100]
    acc_ref, acc_cand = kind.score(ref, labels, names), kind.score(cand, labels, names)
    report = ParityReport(
        rows=len(ref),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        agreement=kind.agreement(ref, cand, labels),
        accuracy_reference=acc_ref,
        accuracy_candidate=acc_cand,
        accuracy_delta=acc_cand - acc_ref,
        atol=atol,
        min_agreement=min_agreement,
        passed=False,
        max_accuracy_drop=max_accuracy_drop,
    )
    report.passed = not _failures(report)
    return report


def check(report: ParityReport, what: str) -> None:
    """Raise ParityError naming `what`, the numbers and the tolerances if the report failed."""
    failures = _failures(report)
    if not failures:
        return
    raise ParityError(
        f"parity failed for {what}: {'; '.join(failures)} ({report.rows} rows). Accuracy "
        f"{report.accuracy_reference:.4f} reference, {report.accuracy_candidate:.4f} candidate "
        f"(Δ {report.accuracy_delta:+.4f}). If {what} came from this checkpoint unchanged, look "
        "for an input mismatch (token_type_ids, padding side, opset); if it is lossy by design "
        "(int8, fp16), set its tolerances to what you accept rather than skipping the check."
    )


def _failures(report: ParityReport) -> list[str]:
    failures = []
    if report.atol is not None and not report.max_abs_diff <= report.atol:  # NaN fails too
        failures.append(f"max |Δlogit| {report.max_abs_diff:.3g} > atol {report.atol:g}")
    if not report.agreement >= report.min_agreement:
        failures.append(
            f"prediction agreement {report.agreement:.3f} < min_agreement {report.min_agreement:g}"
        )
    drop = -report.accuracy_delta
    if report.max_accuracy_drop is not None and drop > report.max_accuracy_drop:
        failures.append(
            f"accuracy drop {drop:.4f} > max_accuracy_drop {report.max_accuracy_drop:g}"
        )
    return failures


def onnx_logits(
    session_or_path,
    dataset,
    tokenizer,
    batch_size: int = 32,
    threads: int | None = None,
    output: str | None = None,
) -> np.ndarray:
    """Logits `[rows, num_labels]` (float32) from ONNX Runtime on CPU, in the dataset's row order.

    output: the graph output to read (a multi-task graph's `logits_<task>`); default `logits`.

    session_or_path: an `onnxruntime.InferenceSession`, a `.onnx` file or a folder holding
    `model.onnx`. threads sets intra-op threads of a session built here (None: ORT's default).
    Only the inputs the graph declares are fed; a declared `token_type_ids` the dataset lacks is
    zeros, as in PyTorch.
    """
    session = _session(session_or_path, threads)
    declared = {i.name: i.type for i in session.get_inputs()}
    unknown = sorted(set(declared) - set(MODEL_INPUTS))
    if unknown:
        raise ValueError(
            f"onnx_logits: the graph declares inputs {unknown} this runner cannot feed; it feeds "
            f"{list(MODEL_INPUTS)} (a text-classification export)"
        )
    output_names = [o.name for o in session.get_outputs()]
    if output is not None and output not in output_names:
        raise ValueError(f"onnx_logits: the graph has no output {output!r}; it has {output_names}")
    output = output or ("logits" if "logits" in output_names else output_names[0])
    chunks = []
    for _, batch in padded_batches(dataset, tokenizer.pad_token_id, batch_size):
        if "token_type_ids" in declared and "token_type_ids" not in batch:
            batch["token_type_ids"] = np.zeros_like(batch["input_ids"])
        feed = {
            name: batch[name].astype(_ORT_INT_TYPES.get(kind, np.int64))
            for name, kind in declared.items()
        }
        chunks.append(session.run([output], feed)[0].astype(np.float32))
    return concat_logits(chunks)


def torch_logits(model, dataset, tokenizer, batch_size: int = 32) -> np.ndarray:
    """Logits `[rows, num_labels]` (float32) from a PyTorch classifier, same batches as onnx_logits."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    chunks = []
    with torch.inference_mode():
        for _, batch in padded_batches(dataset, tokenizer.pad_token_id, batch_size):
            inputs = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
            chunks.append(model(**inputs).logits.float().cpu().numpy())
    return concat_logits(chunks)


def _session(session_or_path, threads: int | None):
    import onnxruntime as ort

    if isinstance(session_or_path, ort.InferenceSession):
        return session_or_path
    path = Path(session_or_path)
    if path.is_dir():
        path = path / "model.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"onnx_logits: no ONNX model at {path}")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

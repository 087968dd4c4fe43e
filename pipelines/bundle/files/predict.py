#!/usr/bin/env python3
"""Classify sentences with the model in this folder: text or JSON lines in, JSON lines out.

    pip install -r requirements.txt
    echo "a gripping, beautifully acted film" | python predict.py
    python predict.py --input sentences.txt --threads 2 > predictions.jsonl

Input, one row per line (blank lines are skipped): plain text, or a JSON object holding the text
column(s) named in distillery.json (`text_columns`; two of them for sentence pairs), or a JSON string.
A multi-task bundle answers for its target task, or for `--task NAME` (one of distillery.json's
`tasks`, each the ONNX output `logits_<name>` of the same graph, with its own labels).
Output, one JSON line per row and in input order, `label` and `score` as transformers'
text-classification pipeline answers (`--probabilities` adds every label's):
    {"line": 3, "label": "positive", "score": 0.98}
    {"line": 3, "label": "positive", "score": 0.98, "probabilities": {"negative": 0.02, "positive": 0.98}}
(distillery.json `task_type` multi_label: `"labels": [...]`, the labels whose sigmoid is over 0.5,
and each label's probability; regression: `"value": 3.52`; token_classification: the input is a
list of words (a JSON object's text column, or plain text split on spaces) and the answer
`"words"`, `"tags"` (one BIO tag per word, read on its first word piece), `"entities"` (type,
start and end word index, end exclusive, and text) and `"untagged"`, the number of words past
max_length, when there are any.)
A line that cannot be read (not UTF-8, not the JSON the model needs) gets an error line instead,
    {"line": 4, "error": "not valid UTF-8 (byte 0xe9 at column 5)"}
also reported on standard error, and the other lines are still predicted (exit status 1 at the
end); `--on-error stop` stops at that line instead, after writing every prediction before it.

Needs only tokenizers, numpy and the engine distillery.json names: onnxruntime for `model.onnx`, or
openvino for `model.xml` (requirements.txt lists the one this bundle needs). An OpenVINO model
runs at INFERENCE_PRECISION_HINT f32, the precision its accuracy was measured in, compiled for
each batch shape it meets (kept for reuse).

Why one module: it is shipped to devices as one file beside the model, with nothing else of
distillery. Copied into each bundle from
distillery's pipelines/bundle/files/predict.py, where it is linted and tested.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

HERE = Path(__file__).resolve().parent
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


class InputError(ValueError):
    """A line of input this script cannot read; the message names the line and the fix."""


class OnnxRuntimeEngine:
    """ONNX Runtime on the CPU: one session for every shape."""

    def __init__(self, folder: Path, config: dict, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: ONNX Runtime's default (all physical cores)
        self.session = ort.InferenceSession(
            str(folder / config["model"]), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name: INT_TYPES.get(i.type, np.int64) for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        wanted = config.get("output_name", "logits")
        self.output = wanted if wanted in outputs else outputs[0]

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output], feed)[0]


class OpenVINOEngine:
    """OpenVINO on the CPU at f32 precision, compiled per padded input shape (at most 64 kept)."""

    def __init__(self, folder: Path, config: dict, threads: int):
        import openvino as ov

        self.core = ov.Core()
        self.model = self.core.read_model(str(folder / config["model"]))
        self.inputs = {i.get_any_name(): np.int64 for i in self.model.inputs}
        self.properties = {
            "INFERENCE_PRECISION_HINT": config.get("precision_hint", "f32"),
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads:
            self.properties["INFERENCE_NUM_THREADS"] = threads
        self.output = config.get("output_name")  # a task head's output; None: the first
        self.compiled: dict[tuple, object] = {}

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        # Right-pad (mask 0, ignored) to a multiple of 16 tokens: a few compiled shapes, not one
        # per sentence length (compiling per length was 5x slower on SST-2's eval split).
        extra = -next(iter(feed.values())).shape[1] % 16
        if extra:
            feed = {k: np.pad(v, ((0, 0), (0, extra))) for k, v in feed.items()}
        shape = next(iter(feed.values())).shape
        if shape not in self.compiled:
            if len(self.compiled) >= 64:
                self.compiled.pop(next(iter(self.compiled)))
            model = self.model.clone()
            model.reshape({name: list(shape) for name in self.inputs})
            compiled = self.core.compile_model(model, "CPU", self.properties)
            self.compiled[shape] = compiled.create_infer_request()
        result = self.compiled[shape].infer(feed)
        return np.asarray(result[self.output] if self.output else result[0])


ENGINES = {"onnxruntime": OnnxRuntimeEngine, "openvino": OpenVINOEngine}


class Predictor:
    """The bundle's tokenizer and model engine, and the batching that feeds them."""

    def __init__(self, folder: Path = HERE, threads: int = 0, task: str | None = None):
        path = folder / "distillery.json"
        if not path.is_file() and (folder / "config.json").is_file():
            path = folder / "config.json"  # a bundle built before distillery.json held these
        try:
            self.config = check_config(json.loads(path.read_bytes()))
        except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError included
            if isinstance(exc, InputError):
                raise
            why = file_error_message(exc)
            raise InputError(f"{path}: {why}; restore the bundle's own distillery.json") from None
        tasks = {t["name"]: t for t in self.config.get("tasks") or []}
        if task is not None:  # a multi-task bundle: one output per task (distillery.json `tasks`)
            if task not in tasks:
                known = ", ".join(tasks) or "none: this bundle has one task"
                raise InputError(f"--task {task!r}: unknown task; this bundle's tasks: {known}")
            self.config = check_config({**self.config, **tasks[task]})
        self.labels: list[str] = self.config["labels"]
        self.text_columns: list[str] = self.config["text_columns"]
        self.kind: str = self.config.get("task_type", "single_label")
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # Padding is done below, per batch; truncation must be the training one (longest_first
        # to max_length, as transformers' `truncation=True` does).
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=int(self.config["max_length"]))
        engine = self.config.get("engine", "onnxruntime")
        if engine not in ENGINES:
            raise InputError(
                f"distillery.json engine {engine!r}: this script runs {sorted(ENGINES)}"
            )
        self.engine = ENGINES[engine](folder, self.config, threads)
        self.inputs = self.engine.inputs
        unknown = sorted(set(self.inputs) - set(MODEL_INPUTS))
        if unknown:
            raise InputError(
                f"the model declares inputs {unknown}; this script feeds {MODEL_INPUTS}"
            )

    def encode(self, rows: list[tuple]) -> list:
        """One `tokenizers.Encoding` per row (token_classification: of its list of words)."""
        if self.kind == "token_classification":
            return self.tokenizer.encode_batch([list(r[0]) for r in rows], is_pretokenized=True)
        return self.tokenizer.encode_batch([r[0] if len(r) == 1 else r for r in rows])

    def logits(self, rows: list[tuple], batch_size: int, order: str, encodings=None) -> np.ndarray:
        """Logits `[rows, labels]` (float32; token_classification `[rows, tokens, labels]`,
        zeros past each batch's length), in the order of `rows`.

        order "length" batches rows of similar token length together (least padding, fastest);
        "input" keeps consecutive rows together, as distillery's evaluation does, so the same rows
        give bit-identical logits (dynamic int8 scales each batch by its own range).
        """
        encodings = encodings or self.encode(rows)
        indices = list(range(len(rows)))
        if order == "length":
            indices.sort(key=lambda i: len(encodings[i].ids))
        tokens = (
            (max(len(e.ids) for e in encodings),) if self.kind == "token_classification" else ()
        )
        out = np.zeros((len(rows), *tokens, len(self.labels)), dtype=np.float32)
        for start in range(0, len(indices), batch_size):
            chosen = indices[start : start + batch_size]
            feed = self._padded([encodings[i] for i in chosen])
            result = self.engine.run(feed)
            if tokens:
                out[chosen, : result.shape[1]] = result[:, : out.shape[1]]
            else:
                out[chosen] = result
        return out

    def _padded(self, encodings) -> dict[str, np.ndarray]:
        """Right-padded int arrays with the true attention mask.

        By hand, not `tokenizer.enable_padding`: the fused Attention of ORT-optimised graphs reads
        the mask as per-row lengths, which is exact only when padding is on the right.
        """
        width = max(len(e.ids) for e in encodings)
        pad_id = int(self.config["pad_token_id"])
        columns = {
            "input_ids": np.full((len(encodings), width), pad_id, dtype=np.int64),
            "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64),
        }
        for row, e in enumerate(encodings):
            columns["input_ids"][row, : len(e.ids)] = e.ids
            columns["attention_mask"][row, : len(e.ids)] = e.attention_mask
            columns["token_type_ids"][row, : len(e.ids)] = e.type_ids
        return {name: columns[name].astype(kind) for name, kind in self.inputs.items()}

    def predict(
        self,
        rows: list[tuple[str, ...]],
        batch_size: int = 32,
        order: str = "length",
        probabilities: bool = False,
    ) -> list[dict]:
        """One answer per row (see the module docstring); `probabilities`: single-label answers
        carry every label's too (multi-label ones always do)."""
        kind = self.kind
        if kind == "token_classification":
            encodings = self.encode(rows)
            logits = self.logits(rows, batch_size, order, encodings)
            return [
                self._tagged(list(r[0]), e.word_ids, row)
                for r, e, row in zip(rows, encodings, logits, strict=True)
            ]
        logits = self.logits(rows, batch_size, order).astype(np.float64)
        if kind == "regression":  # one output: the value
            return [{"value": round(float(row[0]), 6)} for row in logits]
        if kind == "multi_label":  # one sigmoid per label; present above 0.5
            sigmoid = 1.0 / (1.0 + np.exp(-logits))
            return [
                {
                    "labels": [k for k, z in zip(self.labels, row, strict=True) if z > 0],
                    "probabilities": {
                        k: round(float(p), 6) for k, p in zip(self.labels, probs, strict=True)
                    },
                }
                for row, probs in zip(logits, sigmoid, strict=True)
            ]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        answers = []
        for row_logits, row_probs in zip(logits, probs, strict=True):
            best = int(np.argmax(row_logits))
            answer = {"label": self.labels[best], "score": round(float(row_probs[best]), 6)}
            if probabilities:
                answer["probabilities"] = {
                    k: round(float(p), 6) for k, p in zip(self.labels, row_probs, strict=True)
                }
            answers.append(answer)
        return answers

    def _tagged(self, words: list[str], word_ids: list, logits: np.ndarray) -> dict:
        """Each word's tag (argmax on its first piece; "O" for a word with no pieces, such as a
        zero-width space), and the entities the tags spell. Words past max_length are untagged."""
        firsts: dict[int, int] = {}  # word → position of its first piece
        for position, word in enumerate(word_ids):
            if word is not None and word not in firsts:
                firsts[word] = position
        truncated = len(word_ids) >= int(self.config["max_length"])
        tagged = max(firsts) + 1 if truncated and firsts else len(words)
        tags = [
            self.labels[int(np.argmax(logits[firsts[w]]))] if w in firsts else "O"
            for w in range(tagged)
        ]
        out = {
            "words": words,
            "tags": tags,
            "entities": [
                {"type": kind, "start": a, "end": b, "text": " ".join(words[a:b])}
                for kind, a, b in spans(tags)
            ],
        }
        if len(tags) < len(words):
            out["untagged"] = len(words) - len(tags)
        return out


# distillery.json keys this script reads: key → (check, what it must be).
CONFIG_CHECKS = {
    "labels": (
        lambda v: isinstance(v, list) and v and all(isinstance(x, str) for x in v),
        "a non-empty list of label names",
    ),
    "text_columns": (
        lambda v: isinstance(v, list) and 1 <= len(v) <= 2 and all(isinstance(x, str) for x in v),
        "a list of one or two column names",
    ),
    "max_length": (lambda v: _whole(v) and 1 <= v <= 1_000_000, "a token count, 1 to 1000000"),
    "pad_token_id": (lambda v: _whole(v) and v >= 0, "a token id from 0"),
    "batch_size": (lambda v: v is None or (_whole(v) and v >= 1), "a batch size from 1"),
    # the model is a file of this folder (the one SHA256SUMS covers), never a path out of it
    "model": (
        lambda v: (
            isinstance(v, str) and v not in ("", ".", "..") and "/" not in v and "\\" not in v
        ),
        "a file name in this folder",
    ),
}


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_config(config) -> dict:
    """distillery.json as this script needs it; InputError naming the first key that makes no sense
    (a bundle edited by hand, or from another tool)."""
    if not isinstance(config, dict):
        raise InputError(
            "distillery.json: not a JSON object; restore the bundle's own distillery.json"
        )
    for key, (ok, what) in CONFIG_CHECKS.items():
        if (key in config or key not in ("batch_size", "model")) and not ok(config.get(key)):
            shown = repr(config.get(key))
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise InputError(
                f"distillery.json {key}: {shown} is not {what}; restore the bundle's own distillery.json"
            )
    return config


def spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) of each entity in BIO tags, read as seqeval's default mode reads them:
    a span starts at B-X, or at I-X after O or another type. A copy of distillery's
    modelkit.entities.spans, which the pipeline scores with (this file ships alone)."""
    found, current = [], None
    for i, tag in enumerate(tags):
        prefix, kind = (tag[0], tag[2:]) if tag != "O" else ("O", "")
        if current and (prefix != "I" or kind != current[0]):
            found.append((current[0], current[1], i))
            current = None
        if prefix == "B" or (prefix == "I" and current is None):
            current = [kind, i]
    if current:
        found.append((current[0], current[1], len(tags)))
    return found


MAX_LINE_BYTES = 1 << 20  # a row longer than this is refused, not read whole into memory


class LongLine(bytes):
    """A line cut at MAX_LINE_BYTES (the rest was read and dropped): answered with an error."""


def bounded_lines(source, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a binary stream, each read at most `limit` bytes at a time: a stream with no
    newline (a device, a binary file) costs `limit` bytes of memory, not its size."""
    while line := source.readline(limit + 1):
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := source.readline(limit)) and not rest.endswith(b"\n"):
                pass  # the rest of the long line, dropped a piece at a time
            yield LongLine(line[:limit])
        else:
            yield line


def read_rows(
    lines: Iterable[str | bytes], columns: list[str], fmt: str, words: bool = False
) -> Iterator[tuple[int, tuple | InputError]]:
    """(line number, texts) per non-blank line, or (line number, InputError) for one that
    cannot be read; texts has one entry per text column."""
    for number, line in enumerate(lines, 1):
        if isinstance(line, LongLine):
            yield number, InputError(f"line {number}: longer than {MAX_LINE_BYTES} bytes; split it")
            continue
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = line[exc.start]
                yield (
                    number,
                    InputError(
                        f"line {number}: not valid UTF-8 (byte 0x{byte:02x} at column {exc.start + 1})"
                    ),
                )
                continue
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            yield number, parse_row(line, number, columns, fmt, words)
        except InputError as exc:
            yield number, exc


def parse_row(line: str, number: int, columns: list[str], fmt: str, words: bool = False) -> tuple:
    """The texts of one line; `words` (a token classifier): one list of words."""
    if words:
        return (parse_words(line, number, columns[0], fmt),)
    value = decoded(line, number, fmt)
    if isinstance(value, dict):
        missing = [c for c in columns if not isinstance(value.get(c), str)]
        if missing:
            raise InputError(
                f"line {number}: the JSON object has no text under {missing}; "
                f"expected keys {columns} (distillery.json text_columns)"
            )
        return tuple(value[c] for c in columns)
    if isinstance(value, str) and len(columns) == 1:
        return (value,)
    if fmt == "auto" and len(columns) == 1:  # a number or list that parsed as JSON
        return (line,)
    raise InputError(
        f"line {number}: expected a JSON object with keys {columns} "
        + ("(this model reads sentence pairs)" if len(columns) > 1 else "or plain text")
    )


def decoded(line: str, number: int, fmt: str):
    """The line's JSON value, or the line itself (format text, or auto and not JSON)."""
    if fmt == "text":
        return line
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        if fmt == "jsonl":
            raise InputError(f"line {number}: not valid JSON; use --format text") from None
        return line  # auto: plain text


def parse_words(line: str, number: int, column: str, fmt: str) -> list[str]:
    value = decoded(line, number, fmt)
    if isinstance(value, list):  # a JSON array of words
        value = {column: value}
    if isinstance(value, dict):
        found = value.get(column)
        if not (isinstance(found, list) and found and all(isinstance(w, str) for w in found)):
            raise InputError(
                f"line {number}: the JSON object needs a non-empty list of words under "
                f"'{column}' (distillery.json text_columns)"
            )
        return found
    found = (value if isinstance(value, str) else line).split()
    if not found:
        raise InputError(f"line {number}: no words")
    return found


def chunks(rows: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def benchmark(predictor: Predictor, rows: list[tuple], batch_size: int, repeats: int) -> dict:
    """Steady-state latency: p50 of whole passes over `rows` and of one-sentence requests."""
    predictor.predict(rows, batch_size)  # warm-up: first-run allocations are not steady state
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(rows, batch_size)
        passes.append(time.perf_counter() - start)
    single = []
    for row in rows[:32] * repeats:
        start = time.perf_counter()
        predictor.predict([row], 1)
        single.append(time.perf_counter() - start)
    return {
        "sentences": len(rows),
        "batch_size": batch_size,
        "repeats": repeats,
        "batch_p50_ms": 1000 * statistics.median(passes),
        "per_sentence_p50_ms": 1000 * statistics.median(passes) / len(rows),
        "single_p50_ms": 1000 * statistics.median(single),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, help="a file of rows (default: standard input)")
    parser.add_argument("--format", choices=("auto", "text", "jsonl"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads; 0: ORT default")
    parser.add_argument("--batch-size", type=int, default=None, help="default: distillery.json's")
    parser.add_argument(
        "--order",
        choices=("length", "input"),
        default="length",
        help="length: batch rows of similar length (fast); input: consecutive rows, as "
        "distillery's evaluation did (bit-identical to its recorded predictions)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=4096,
        help="rows gathered before each round of predictions (sorted by length within it); "
        "1 answers each line as it arrives",
    )
    parser.add_argument(
        "--benchmark", type=int, metavar="REPEATS", help="print latency of REPEATS passes instead"
    )
    parser.add_argument("--timings", action="store_true", help="JSON timings on standard error")
    parser.add_argument(
        "--probabilities",
        action="store_true",
        help="single-label: add every label's probability to each answer (label and score alone "
        "by default, as transformers' pipeline answers)",
    )
    parser.add_argument(
        "--task",
        help="a multi-task bundle: the task whose head answers (distillery.json `tasks`); default: "
        "the target task",
    )
    parser.add_argument(
        "--on-error",
        choices=("skip", "stop"),
        default="skip",
        help="a line that cannot be read: write an error line for it and go on (exit 1 at the "
        "end), or stop there (exit 2) after writing every prediction before it",
    )
    args = parser.parse_args(argv)
    for name in ("threads", "batch_size", "window", "benchmark"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "threads" else 1):
            parser.error(f"--{name.replace('_', '-')} must be ≥ {0 if name == 'threads' else 1}")
    return args


def file_error_message(exc: BaseException) -> str | None:
    """One line for an OSError, UnicodeDecodeError or JSON error from a file we were handed;
    None for anything else (a bug: it keeps its traceback). A small copy of distillery's
    pipelines.core.errors.file_error_message: this script ships alone, without distillery."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else "the output"
        return f"{where}: {exc.strerror or type(exc).__name__}"
    return None


def open_input(path: Path | None):
    """The rows' source: standard input, or `path` if it is a regular file (a folder, a FIFO or
    a device is refused before it is opened: reading a FIFO with no writer waits forever)."""
    if path is None:
        return sys.stdin.buffer
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise InputError(f"--input {path}: {exc.strerror}; give a file of rows") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise InputError(f"--input {path}: {kind}; give a file of rows (or none: standard input)")
    return open(path, "rb")  # noqa: SIM115 (closed by main)


def usable_threads(requested: int) -> int:
    """--threads, at most the cores this process may use (more only queue on the same cores,
    and each thread costs memory: 100,000 of them took 16 GB); 0 stays ONNX Runtime's default."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if requested > cores:
        print(f"note: --threads {requested} lowered to {cores}, the cores here", file=sys.stderr)
        return cores
    return requested


def main(argv: list[str] | None = None) -> int:
    """Entry point: `run`, with the one-line messages for what the user handed us."""
    try:
        return run(argv)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `python predict.py ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"error: {file_error_message(exc)}", file=sys.stderr)
        # what is still buffered for a full disk would fail again at exit, with a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 2


def run(argv: list[str] | None = None) -> int:
    started = time.time()  # after imports: the caller subtracts its spawn time for startup+import
    args = parse_args(argv)
    source = open_input(args.input)
    try:
        predictor = Predictor(HERE, usable_threads(args.threads), args.task)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{HERE}: cannot load the bundle: {file_error_message(exc)}") from None
    session_s = time.time() - started
    batch_size = args.batch_size or int(predictor.config.get("batch_size", 32))
    # Whole batches per window, so --order input batches exactly as one pass over all rows would.
    window = args.window if args.window < batch_size else args.window // batch_size * batch_size
    first_s = None
    failed = 0
    try:
        words = predictor.kind == "token_classification"
        rows = read_rows(bounded_lines(source), predictor.text_columns, args.format, words)
        if args.benchmark:
            found = [texts for _, texts in rows if not isinstance(texts, InputError)]
            print(json.dumps(benchmark(predictor, found, batch_size, args.benchmark)))
            return 0
        for chunk in chunks(rows, window):
            bad = next((i for i, (_, t) in enumerate(chunk) if isinstance(t, InputError)), None)
            if bad is not None and args.on_error == "stop":
                chunk = chunk[:bad] + [chunk[bad]]  # predict what came before, then stop
            good = [(n, t) for n, t in chunk if not isinstance(t, InputError)]
            results = iter(
                predictor.predict([t for _, t in good], batch_size, args.order, args.probabilities)
                if good
                else []
            )
            for number, texts in chunk:
                if isinstance(texts, InputError):
                    failed += 1
                    print(f"error: {texts}", file=sys.stderr)
                    if args.on_error == "stop":
                        sys.stdout.flush()
                        return 2
                    print(json.dumps({"line": number, "error": str(texts).split(": ", 1)[1]}))
                else:
                    print(json.dumps({"line": number, **next(results)}, ensure_ascii=False))
            sys.stdout.flush()
            if first_s is None:
                first_s = time.time() - started - session_s
    finally:
        if args.input:
            source.close()
    if args.timings:
        timing = {"main_started": started, "session_s": session_s, "first_prediction_s": first_s}
        print(json.dumps(timing), file=sys.stderr)
    if failed:
        print(
            f"error: {failed} line(s) could not be read; their output lines say why",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

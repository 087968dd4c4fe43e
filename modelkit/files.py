"""Which files of a model folder are what. Three different lists, so three different names."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

# Config and tokenizer files an ONNX folder needs beside model.onnx to load with
# ORTModel*.from_pretrained. optimum's ort_config.json is left out on purpose: it would describe
# the optimisation of the graph it came from, not the artifact it is copied beside.
CONFIG_AND_TOKENIZER_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
)
# The files a saved tokenizer's vocabulary is in (one of them at least): a folder with none holds
# no tokenizer.
VOCAB_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "sentencepiece.bpe.model",
    "spiece.model",
)
# An ONNX graph and its external weights (written beside it when the weights pass 2 GB).
ONNX_FILES = ("model.onnx", "model.onnx_data")
# The files holding a model's weights, for its size on disk (PyTorch or ONNX).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", *ONNX_FILES)


def copy_config_and_tokenizer(src_dir: Path, dst_dir: Path) -> list[str]:
    """Copy CONFIG_AND_TOKENIZER_FILES present in `src_dir` to `dst_dir`; the names copied."""
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    present = [name for name in CONFIG_AND_TOKENIZER_FILES if (src_dir / name).is_file()]
    if src_dir.resolve() != dst_dir.resolve():
        for name in present:
            shutil.copy2(src_dir / name, dst_dir / name)
    return present


def size_mb(folder: Path, files: tuple[str, ...] = WEIGHT_FILES) -> float | None:
    """MiB of the listed files under `folder` (None when none is there)."""
    found = [Path(folder) / f for f in files if (Path(folder) / f).is_file()]
    return sum(f.stat().st_size for f in found) / 2**20 if found else None


def _umask() -> int:
    """The process's umask; reading it means setting it, so it is set straight back."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[IO], None], binary: bool = False) -> None:
    """Call `write(handle)` on a temporary file beside `path`, fsync, then `os.replace` it onto
    `path`: a reader sees the old file or the whole new one, never a part; a failure leaves
    neither a partial file nor the temporary one. The file gets the mode `open()` would give it
    (0666 less the umask, so 0644 usually): mkstemp makes its file 0600, which would leave
    reports and manifests unreadable to anyone else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""Where a model or dataset comes from: a local path, the Hugging Face Hub, or a generator.

`preflight` checks every hub id a run needs before any work starts, with a short timeout, so an
offline machine gets one clear message in seconds instead of a retry loop at minute 50.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipelines.core.errors import SourceError

HUB_TIMEOUT_S = 10.0

# Short names users know from papers → (hub repo, config). Anything else is passed through.
HUB_DATASET_ALIASES = {"glue": "nyu-mll/glue", "super_glue": "aps/super_glue"}


@dataclass(frozen=True)
class Source:
    kind: Literal["local", "hub", "synthetic"]
    value: str  # resolved path, hub repo id, or generator name
    subset: str | None = None
    key: str = ""  # recipe key it came from, for messages
    given: str = ""  # the value as the recipe wrote it

    @property
    def path(self) -> Path:
        return Path(self.value)


def model_source(value: str, key: str) -> Source:
    if Path(value).exists():
        return Source("local", str(Path(value).resolve()), key=key)
    if value.startswith(("/", "./", "../", "~")):
        raise SourceError(
            f"{key}: local path {value} does not exist. Fix the path or give a hub id."
        )
    return Source("hub", value, key=key, given=value)


def dataset_source(value: str, subset: str | None, key: str = "data.source") -> Source:
    if value.startswith("synthetic:"):
        return Source("synthetic", value.split(":", 1)[1], key=key)
    if Path(value).exists():
        return Source("local", str(Path(value).resolve()), key=key)
    if value.startswith(("/", "./", "../", "~")):
        raise SourceError(
            f"{key}: local path {value} does not exist. Give a folder holding one file per split "
            "(train.jsonl, validation.jsonl, ...), a single data file, or a hub dataset id."
        )
    head, _, tail = value.partition("/")
    if head in HUB_DATASET_ALIASES and tail and subset is None:
        return Source("hub", HUB_DATASET_ALIASES[head], subset=tail, key=key, given=value)
    return Source("hub", value, subset=subset, key=key, given=value)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _cached(source: Source, repo_type: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    filename = "config.json" if repo_type == "model" else "README.md"
    hit = try_to_load_from_cache(source.value, filename, repo_type=repo_type)
    return isinstance(hit, str)


def check_hub(source: Source, repo_type: Literal["model", "dataset"]) -> str | None:
    """None when the hub id is usable (cached or reachable), else a one-line reason."""
    if source.kind != "hub" or _cached(source, repo_type):
        return None
    if _hub_offline():
        return "HF_HUB_OFFLINE is set and it is not in the local cache"
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().repo_info(source.value, repo_type=repo_type, timeout=HUB_TIMEOUT_S)
    except RepositoryNotFoundError:
        return "no such repository on the Hugging Face Hub"
    except HfHubHTTPError as exc:
        return f"the Hub answered {exc.__class__.__name__}"
    except Exception as exc:  # connection refused, DNS, timeout: all mean "unreachable"
        return f"the Hugging Face Hub could not be reached ({exc.__class__.__name__})"
    return None


def preflight(sources: list[tuple[Source, Literal["model", "dataset"]]]) -> None:
    """Raise one SourceError naming every hub id that cannot be used, and how to go local."""
    problems = []
    for source, repo_type in sources:
        reason = check_hub(source, repo_type)
        if reason:
            shown = source.given or source.value
            if source.given and source.given != source.value:
                shown += f" (hub dataset {source.value}, config {source.subset})"
            problems.append(f"  {source.key} = {shown}: {reason}")
    if problems:
        keys = " ".join(
            f"{s.key}=/path/to/local/{'model' if t == 'model' else 'data'}"
            for s, t in sources
            if s.kind == "hub"
        )
        raise SourceError(
            "cannot load from the Hugging Face Hub:\n" + "\n".join(problems) + "\n"
            f"To run offline, point the recipe at local files, e.g. --set {keys}\n"
            "(a model folder in save_pretrained layout; a data folder with train.jsonl / "
            "validation.jsonl). recipes/sst2-minilm.yaml does this with ../shared."
        )


def fingerprint(source: Source) -> str:
    """What a stage reading `source` depends on: for a local folder, the sha256 and size of its
    weight, config and tokenizer files (so new weights at the same path make the stage stale);
    for the Hub, the id (its revision is whatever the cache holds)."""
    if source.kind != "local":
        return f"{source.kind}:{source.value}:{source.subset or ''}"
    from modelkit.files import CONFIG_AND_TOKENIZER_FILES, WEIGHT_FILES
    from pipelines.core.runs import sha256_file

    folder = source.path
    names = {*WEIGHT_FILES, *CONFIG_AND_TOKENIZER_FILES}
    files = (
        sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and (p.name in names or p.suffix == ".safetensors")
        )
        if folder.is_dir()
        else [folder]
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}:{path.stat().st_size}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()

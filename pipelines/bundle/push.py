"""Push a built bundle folder to the Hugging Face Hub, model card included.

    distillery push runs/demo/bundle --repo-id you/demo-int8 [--private] [--revision main]

The bundle's README.md is its model card (it opens with the Hub's metadata block). Before anything
is sent the bundle is verified as `distillery bundle --verify` does (SHA256SUMS, a complete
reference.json, predict.py reproducing its recorded predictions), so what lands on the Hub is
exactly what the bundle stage verified; the pipeline's own records (manifest.json, log.txt) stay local. The upload itself is
`huggingface_hub`'s `create_repo` + `upload_folder`; this module only adds the checks and turns the
Hub's failures (offline, no token, no permission) into one line that says what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.bundle.verify import RUN_RECORDS, SUMS, check_sha256sums, verify_bundle
from pipelines.core.errors import DistilleryError


class PushError(DistilleryError):
    """The bundle could not be pushed: not a bundle, altered, or the Hub refused or is unreachable."""


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    api: Any = None,
    verify: bool = True,
    echo=print,
) -> str:
    """Upload `folder` (a verified bundle) to model repo `repo_id`; returns the commit URL.
    `verify=False` checks SHA256SUMS only (for a folder that is not a full bundle)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PushError(f"{folder}: not a folder. Give a bundle folder (runs/<name>/bundle).")
    if not (folder / SUMS).is_file() or not (folder / "README.md").is_file():
        raise PushError(
            f"{folder}: not a bundle (no {SUMS} or README.md). Build one first: "
            "`distillery bundle RECIPE`."
        )
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PushError(f"--repo-id {repo_id!r}: expected 'owner/name' (e.g. you/sst2-int8).")
    files = verify_bundle(folder, echo=echo)["files"] if verify else check_sha256sums(folder)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    message = commit_message or f"distillery bundle ({len(files)} files)"
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            revision=revision,
            commit_message=message,
            ignore_patterns=list(RUN_RECORDS),
        )
    except Exception as error:  # the Hub's errors are many types; each gets one actionable line
        raise PushError(_explain(error, repo_id)) from error
    return str(getattr(info, "commit_url", info))


def _explain(error: Exception, repo_id: str) -> str:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, OfflineModeIsEnabled):
        return f"push {repo_id}: HF_HUB_OFFLINE is set; unset it to push ({error})."
    if isinstance(error, HfHubHTTPError) and status in (401, 403):
        return (
            f"push {repo_id}: the Hub refused ({status}): log in with `huggingface-cli login` or "
            "set HF_TOKEN to a token with write access to that namespace."
        )
    if isinstance(error, HfHubHTTPError):
        return f"push {repo_id}: the Hub answered {status}: {str(error).splitlines()[0]}"
    if isinstance(error, (ConnectionError, OSError)) or "Connection" in type(error).__name__:
        return (
            f"push {repo_id}: cannot reach the Hub ({type(error).__name__}). Check the network "
            "(or HF_ENDPOINT), then rerun; nothing was changed locally."
        )
    return f"push {repo_id}: {type(error).__name__}: {error}"

"""`distillery push`: a checked bundle goes to the Hub as one folder upload (Hub calls mocked)."""

from __future__ import annotations

import pytest

from pipelines import cli
from pipelines.bundle.push import PushError, push_to_hub
from pipelines.bundle.verify import BundleError, write_sha256sums


class FakeHub:
    def __init__(self, fail: Exception | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.fail = fail

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        if self.fail:
            raise self.fail

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))

        class Info:
            commit_url = f"https://hub.example/{kwargs['repo_id']}/commit/abc"

        return Info()


@pytest.fixture
def bundle(tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlibrary_name: onnxruntime\n---\n# card\n")
    (folder / "model.onnx").write_bytes(b"graph")
    (folder / "manifest.json").write_text("{}")  # a run record: stays local
    write_sha256sums(folder)
    return folder


def test_push_uploads_the_checked_folder_without_run_records(bundle):
    hub = FakeHub()
    url = push_to_hub(bundle, "me/demo-int8", private=True, revision="dev", api=hub, verify=False)
    assert url == "https://hub.example/me/demo-int8/commit/abc"
    (name, create), (_, upload) = hub.calls
    assert name == "create_repo" and create["private"] is True and create["exist_ok"] is True
    assert upload["folder_path"] == str(bundle) and upload["repo_id"] == "me/demo-int8"
    assert upload["revision"] == "dev" and "manifest.json" in upload["ignore_patterns"]
    assert "2 files" in upload["commit_message"]  # README.md and model.onnx, as SHA256SUMS lists


def test_an_altered_bundle_is_refused_before_any_hub_call(bundle):
    (bundle / "model.onnx").write_bytes(b"other graph")
    hub = FakeHub()
    with pytest.raises(BundleError, match="model.onnx: altered after the bundle was built"):
        push_to_hub(bundle, "me/x", api=hub, verify=False)
    assert hub.calls == []


def test_not_a_bundle_and_a_bad_repo_id_say_what_to_do(tmp_path, bundle):
    with pytest.raises(PushError, match="not a bundle .*distillery bundle RECIPE"):
        push_to_hub(tmp_path, "me/x", api=FakeHub(), verify=False)
    with pytest.raises(PushError, match="expected 'owner/name'"):
        push_to_hub(bundle, "just-a-name", api=FakeHub(), verify=False)


def test_hub_refusal_and_offline_become_one_actionable_line(bundle, monkeypatch):
    import requests
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    response = requests.Response()
    response.status_code = 401
    refused = HfHubHTTPError("401 Unauthorized", response=response)
    with pytest.raises(PushError, match="refused \\(401\\).*HF_TOKEN"):
        push_to_hub(bundle, "me/x", api=FakeHub(fail=refused), verify=False)
    # Real clients: with HF_HUB_OFFLINE set (as the test suite runs), then against an endpoint
    # nobody listens on, which is what a user without a network sees.
    from huggingface_hub import constants
    from huggingface_hub.utils import reset_sessions

    unreachable = HfApi(endpoint="http://127.0.0.1:9", token="hf_test")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    reset_sessions()
    with pytest.raises(PushError, match="HF_HUB_OFFLINE is set; unset it"):
        push_to_hub(bundle, "me/x", api=unreachable, verify=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    reset_sessions()
    try:
        with pytest.raises(PushError, match="cannot reach the Hub \\(ConnectionError\\)"):
            push_to_hub(bundle, "me/x", api=unreachable, verify=False)
    finally:
        monkeypatch.undo()
        reset_sessions()


def test_cli_push_reports_errors_in_one_line(bundle, capsys):
    code = cli.main(["push", str(bundle), "--repo-id", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "owner/name" in err

"""A Hugging Face Hub-compatible HTTP server for tests, backed by real git repositories.

The real `huggingface_hub` client (HfApi, hf_hub_download, snapshot_download, HfFileSystem) and the real
`datasets.load_dataset` (streaming or not) work against it. Each repo is a bare git repository on disk, so
commit shas are real 40-hex git commit ids, tags are git tags and history is git history. Large or binary
files go through the legacy LFS protocol (batch + PUT) like on the real Hub and are stored as LFS pointer
files in git, unless `lfs_mode="never"`.

Use it in-process (see `tests/hub_fixtures.py` for the pytest fixture that also points the clients at it)::

    with HubServer(tmp_path / "hub") as hub:
        sha = hub.host_folder("tester/corpus", folder)
        hub.fail_next("POST", r"/commit/", status=500)

or as a separate process (for benchmarks and subprocess tests)::

    python -m dynosaur.testing.hub_server --root DIR --port 0 --port-file PATH

Bookkeeping for assertions: `requests` [(method, path)], `log` [RecordedRequest], `unhandled` [(method, path)]
for anything the server does not implement, `errors` [traceback text] for server-side bugs.

Only the standard library, PyYAML (for README front matter) and the `git` command are used.

Where to look: server.py (HubServer: lifecycle, test controls, direct repo helpers), storage.py (the git
repositories and LFS objects on disk), handler.py (each HTTP request: delays, faults, the log), routing.py
(the URL map, account and repo create/delete), repo_info.py (repo info, listing and search, refs, trees),
commits.py (preupload, commits, tags, branches), files.py (downloads, the LFS batch and objects), access.py
(who may write, which revision a URL names), model.py (requests, responses, errors, fault rules, constants),
__main__.py (as a process).
"""

from dynosaur.testing.hub_server.model import (
    DROP,
    DelayRule,
    FaultRule,
    HubError,
    RecordedRequest,
    Repo,
    Response,
)
from dynosaur.testing.hub_server.server import HubServer

__all__ = ["DROP", "DelayRule", "FaultRule", "HubError", "HubServer", "RecordedRequest", "Repo", "Response"]

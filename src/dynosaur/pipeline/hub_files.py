"""Organize's reads of Hub sources: each split's files downloaded in parallel, within the Hub's rate limit.

collect records the files of each split of a Hub source at its pinned commit (`SplitInfo.files`). organize
fetches them with `hf_hub_download` into the Hugging Face cache, several at once and ahead of the source it is
working on, and reads them with pyarrow as it reads a local source's. Only `/resolve/` requests are made, the
Hub's "Resolvers" bucket (5,000 per 5-minute window for a free user, 3,000 anonymous;
https://huggingface.co/docs/hub/rate-limits), never API calls (1,000 per window). At most
`hub.read_concurrency` downloads run at once, and at most `hub.requests_per_window` requests start in any
`hub.window_s` seconds: every HTTP request huggingface_hub sends while organize reads (a download is two, its
metadata and its file; a retry is one more) waits for the limiter in an event hook of the client. A 429 is
retried by huggingface_hub itself, after the wait its `Retry-After` / `RateLimit` header names.

A source whose files collect did not record (an older record, a loading script, a format pyarrow does not read)
is read through `datasets` streaming, one at a time, as before.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from dynosaur.core.records import SourceMeta

LocalFiles = dict[str, list[Path]]  # split name → its files in the local cache


class RateLimiter:
    """At most `calls` starts in any `window_s` seconds (a sliding window), shared by threads."""

    def __init__(
        self,
        calls: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.calls, self.window_s = calls, window_s
        self._clock, self._sleep = clock, sleep
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self, n: int = 1) -> None:
        """Block until `n` more starts fit in the window, then record them."""
        n = min(n, self.calls)
        while True:
            with self._lock:
                now = self._clock()
                while self._starts and now - self._starts[0] >= self.window_s:
                    self._starts.popleft()
                if len(self._starts) + n <= self.calls:
                    self._starts.extend([now] * n)
                    return
                wait = self.window_s - (now - self._starts[len(self._starts) + n - self.calls - 1])
            self._sleep(max(wait, 0.001))


@contextmanager
def rate_limited(limiter: RateLimiter) -> Iterator[None]:
    """Every request huggingface_hub sends in this block first waits for `limiter` (a request event hook on a
    client of huggingface_hub's own defaults); the default client is back afterwards."""
    import httpx2
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    def limited() -> httpx2.Client:
        client = default_client_factory()
        client.event_hooks["request"].append(lambda request: limiter.acquire())
        return client

    set_client_factory(limited)
    try:
        yield
    finally:
        set_client_factory(default_client_factory)


def fetchable(meta: SourceMeta) -> bool:
    """Whether organize reads this source from downloaded files: a Hub source each of whose splits has
    recorded files that pyarrow reads."""
    from dynosaur.pipeline.sources import arrow_format

    splits = meta.splits
    return meta.kind == "hub" and bool(splits) and all(s.files and arrow_format(s.files) for s in splits)


def download_source(meta: SourceMeta) -> LocalFiles:
    """The files of each split of a Hub source at its pinned commit, in the local Hugging Face cache."""
    from huggingface_hub import hf_hub_download

    local: LocalFiles = {}
    for split in meta.splits:
        paths = []
        for name in split.files:
            paths.append(
                Path(hf_hub_download(meta.location, name, repo_type="dataset", revision=meta.revision))
            )
        local[split.name] = paths
    return local


def prefetch(
    metas: Iterable[SourceMeta],
    *,
    concurrency: int,
    limiter: RateLimiter,
    download: Callable[[SourceMeta], LocalFiles] = download_source,
) -> Iterator[tuple[SourceMeta, LocalFiles | BaseException | None]]:
    """Each meta in order with its downloaded files (None: read through `datasets`; an exception: the download
    failed, for the caller to record). Up to `concurrency` sources download at once, ahead of the consumer."""
    pending: deque[tuple[SourceMeta, Future[LocalFiles] | None]] = deque()
    source = iter(metas)
    with rate_limited(limiter), ThreadPoolExecutor(concurrency, thread_name_prefix="hub-read") as pool:

        def top_up() -> None:
            while sum(f is not None for _, f in pending) < concurrency:
                meta = next(source, None)
                if meta is None:
                    return
                job = pool.submit(download, meta) if fetchable(meta) else None
                pending.append((meta, job))

        top_up()
        while pending:
            meta, job = pending.popleft()
            if job is None:
                yield meta, None
            else:
                try:
                    yield meta, job.result()
                except Exception as exc:  # the Hub's and the HTTP client's errors: the caller records them
                    yield meta, exc
            top_up()

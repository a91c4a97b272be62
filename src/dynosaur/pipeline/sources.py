"""Reading source datasets: metadata for collect, Arrow batches of rows for organize.

A local source is a folder laid out like a Hub dataset repo (a `README.md` card plus data files), so both
kinds go through the same `datasets` loader: `load_dataset(folder_or_repo, config, revision=..., streaming=True)`
read as Arrow tables, which keeps memory bounded whatever the source's size. Metadata comes from the card
(`huggingface_hub.DatasetCard`) and the builder's features; Hub metadata from `HfApi.dataset_info`.

What a source's fields are (types, flattened columns, statistics) is in `source_features.py`. Pinning and
listing, for `dyno refresh` and `dyno discover`, are in `hub_catalog.py`. This module, that one and
`src/dynosaur/registry/hub.py` are the only places that talk to the Hub.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dynosaur.core.errors import SourceError, first_line
from dynosaur.core.params import CollectParams, SourceSpec
from dynosaur.core.records import Feature, SourceMeta, SplitInfo
from dynosaur.core.transport import check_hub_token_transport
from dynosaur.pipeline.source_features import (
    cap_value,
    feature_stats,
    flat_features,
    flatten_table,
    label_lists,
)

TEST_SPLIT = re.compile(r"(^|[_-])test($|[_-])", re.IGNORECASE)
# Bump when collect reads a source differently (its features, their names), so every record is redone
# (3: label-like fields record their value set, numeric ones their range; 4: the card's languages).
READER_VERSION = 4


# --- revisions -------------------------------------------------------------------------------------------


def local_files(folder: Path) -> list[Path]:
    """The files a local source's revision covers, in order (hidden ones left out). `os.walk` (scandir):
    collect lists every local source's folder on every run: 0.19 s for 2,000 folders where rglob took 0.30 s."""
    found: list[Path] = []
    for parent, dirs, names in os.walk(folder):  # as rglob: symlinked folders are not entered
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += (Path(parent, n) for n in names if not n.startswith("."))
    return sorted(p for p in found if p.is_file())


def local_revision(folder: Path) -> str:
    """Content fingerprint of a local source: sha256 over (relative path, file sha256) of every file."""
    outer = hashlib.sha256()
    for path in local_files(folder):
        inner = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                inner.update(chunk)
        outer.update(f"{path.relative_to(folder).as_posix()}\0{inner.hexdigest()}\n".encode())
    return "sha256:" + outer.hexdigest()


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def hub_transport_errors() -> tuple[type[BaseException], ...]:
    """What a Hub call raises when the Hub answers an error or can't be reached (connection, timeout): the
    HTTP client's own errors are not OSErrors."""
    from huggingface_hub.errors import HfHubHTTPError

    errors: list[type[BaseException]] = [HfHubHTTPError, OSError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(__import__(module).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def hub_failure(exc: BaseException) -> str:
    """A Hub transport error as the tail of one line. Offline mode gets its own whole sentence:
    huggingface_hub's message (the full URL first) is cut mid-word by `first_line`'s length cap."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set (offline mode); unset it to reach the Hub"
    return first_line(exc)


def resolve_hub_revision(source_id: str, repo: str, revision: str | None) -> tuple[str, Any]:
    """(commit sha, DatasetInfo) for a Hub dataset at a branch, tag or sha."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi().dataset_info(repo, revision=revision)
    except RepositoryNotFoundError:
        raise SourceError(source_id, f"{repo}: dataset not found on the Hub (or no access)") from None
    except RevisionNotFoundError:
        raise SourceError(source_id, f"{repo}: revision {revision!r} not found on the Hub") from None
    except hub_transport_errors() as exc:
        raise SourceError(source_id, f"{repo}: Hub unreachable: {hub_failure(exc)}") from None
    return str(info.sha), info


def guard_hub_token(allow_insecure_http: bool) -> None:
    """Refuse, before any connection, to send the Hugging Face token in clear (`hub.allow_insecure_http`)."""
    from huggingface_hub import constants, get_token

    check_hub_token_transport(constants.ENDPOINT, bool(get_token()), allow_insecure_http)


# --- rows ------------------------------------------------------------------------------------------------


def _load(location: str, split: str, revision: str | None, **how: Any) -> Any:
    import datasets

    return datasets.load_dataset(location, split=split, revision=revision, streaming=True, **how)


def _card_configs(folder: Path) -> list[dict[str, Any]]:
    """The `configs:` entries of a local folder's card ([] without a card or the block)."""
    card = folder / "README.md"
    if not card.exists():
        return []
    from huggingface_hub import DatasetCard

    configs = DatasetCard.load(card).data.get("configs") or []
    return [c for c in configs if isinstance(c, dict)]


def parquet_export_configs(folder: Path) -> list[str]:
    """The configs of a folder in the Hub's parquet-export layout (`<config>/<split>/<n>.parquet` and no
    card `configs:`), else []. `datasets` alone would merge every config's files into one split."""
    data = [
        p.relative_to(folder)
        for p in folder.rglob("*")
        if p.is_file() and not _hidden(p, folder) and p.relative_to(folder).parts != ("README.md",)
    ]
    if not data or any(len(f.parts) != 3 or f.suffix != ".parquet" for f in data):
        return []
    return [] if _card_configs(folder) else sorted({f.parts[0] for f in data})


def _local_how(folder: Path, config: str | None) -> dict[str, Any]:
    """How `datasets` reads one config of a local folder: a parquet-export config is its sub-folder."""
    if config is not None and config in parquet_export_configs(folder):
        return {"data_dir": config}
    return {"name": config}


# The file formats organize reads with pyarrow itself (`arrow_format`, `_arrow_batches`): a local split whose
# files all have one of these suffixes; anything else goes through `datasets`, as in collect. collect opens
# each such file this way (`check_organize_reads`), so a file `datasets` reads and pyarrow does not (a JSON
# array saved as .jsonl, a column that changes type) fails in collect, before any LLM call is paid.
READABLE_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".csv": "csv"}


def arrow_format(files: list[str]) -> str | None:
    """The pyarrow format organize reads `files` (one split's) with, or None when `datasets` reads them."""
    formats = {READABLE_FORMATS.get(Path(f).suffix) for f in files}
    return formats.pop() if len(formats) == 1 and None not in formats else None


def _arrow_batches(paths: list[Path], fmt: str, batch_rows: int) -> Iterator[Any]:
    import pyarrow.dataset as pads

    dataset = pads.dataset([str(p) for p in paths], format=fmt)
    yield from dataset.to_batches(batch_size=batch_rows, batch_readahead=2, fragment_readahead=1)


def check_organize_reads(source_id: str, folder: Path, splits: list[SplitInfo]) -> None:
    """Open each file of `splits` the way organize will and read its first row; a file it can't read is a
    `SourceError` naming it."""
    for split in splits:
        fmt = arrow_format(split.files)
        if fmt is None:
            continue
        for name in split.files:
            try:
                next(_arrow_batches([folder / name], fmt, 1), None)
            except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a file it can't read
                raise SourceError(
                    source_id,
                    f"{name}: organize cannot read it as {fmt} with pyarrow ({first_line(exc, typed=True)});"
                    f" save it as {'JSON Lines, one object per line with one type per field' if fmt == 'json' else fmt}",
                ) from None


def iter_batches(
    meta: SourceMeta, split: str, batch_rows: int, root: Path = Path("."), files: list[Path] | None = None
) -> Iterator[Any]:
    """The rows of one split as `pyarrow.Table` batches (streamed, bounded memory), in the columns that
    collect's features name: nested fields flattened (`answers.text`), lists of class labels as names.

    A local split whose files are all parquet, jsonl or csv is scanned with `pyarrow.dataset` directly (no
    `datasets` import, a few batches of read-ahead), and so is a Hub split whose recorded files organize has
    downloaded (`files`, see hub_files.py); anything else goes through `datasets` streaming.
    """
    for table in _raw_batches(meta, split, batch_rows, root, files):
        yield label_lists(flatten_table(table), meta)


def _raw_batches(
    meta: SourceMeta, split: str, batch_rows: int, root: Path, files: list[Path] | None
) -> Iterator[Any]:
    info = next((s for s in meta.splits if s.name == split), None)
    if info and info.files and (fmt := arrow_format(info.files)):
        if meta.kind == "local":
            files = [root / meta.location / f for f in info.files]
        if files is not None:
            import pyarrow as pa

            for batch in _arrow_batches(files, fmt, batch_rows):
                if batch.num_rows:
                    yield pa.Table.from_batches([batch])
            return
    if meta.kind == "local":
        folder = root / meta.location
        ds = _load(str(folder), split, None, **_local_how(folder, meta.config))
    else:
        ds = _load(meta.location, split, meta.revision, name=meta.config)
    yield from ds.with_format("arrow").iter(batch_size=batch_rows)


def source_revision(spec: SourceSpec, root: Path = Path(".")) -> str:
    """A local folder's content fingerprint, or the commit sha a Hub revision points at now."""
    if spec.path is not None:
        folder = root / spec.path
        if not folder.is_dir():
            raise SourceError(spec.id, f"folder {spec.path} does not exist")
        return local_revision(folder)
    return resolve_hub_revision(spec.id, str(spec.hub), spec.revision)[0]


# --- collect ---------------------------------------------------------------------------------------------


def _card(spec: SourceSpec, root: Path, sha: str | None):
    from huggingface_hub import DatasetCard

    if spec.path is not None:
        card_path = root / spec.path / "README.md"
        return DatasetCard.load(card_path) if card_path.exists() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return DatasetCard.load(
            hf_hub_download(str(spec.hub), "README.md", repo_type="dataset", revision=sha)
        )
    except EntryNotFoundError:
        return None


def card_languages(card_data: Any) -> list[str]:
    """The card's `language` field (a code or a list of codes), sorted and without blanks or repeats."""
    value = getattr(card_data, "language", None) if card_data is not None else None
    codes = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return sorted({c.strip() for c in codes if isinstance(c, str) and c.strip()})


def _description(card: Any, max_chars: int) -> str:
    if card is None:
        return ""
    text = re.sub(r"\n{3,}", "\n\n", card.text).strip()
    return text if len(text) <= max_chars else text[:max_chars].rstrip() + "…"


def _local_config(source_id: str, folder: Path, config: str | None) -> dict[str, Any]:
    """`_local_how` for collect, after checking `config` against the configs the folder declares (card
    `configs:`) or lays out (parquet export): one must be named when there are several and no default."""
    declared = _card_configs(folder)
    if declared:
        names = [str(c.get("config_name", "default")) for c in declared]
        has_default = len(names) == 1 or "default" in names or any(c.get("default") for c in declared)
    else:
        names = parquet_export_configs(folder)
        has_default = len(names) <= 1
    if config is None and not has_default:
        raise SourceError(source_id, f"has configs {', '.join(names)}: name one as the source's `config`")
    if config is not None and names and config not in names:
        raise SourceError(source_id, f"config {config!r} not found (has: {', '.join(names)})")
    return _local_how(folder, config)


def split_files(files: list[str], kind: str, location: str, revision: str) -> list[str]:
    """A split's data files relative to the source: its folder (local), or its repo at the pinned commit
    (Hub: `hf://datasets/owner/name@sha/path`, which organize downloads); [] when a file lies elsewhere."""
    if kind == "local":
        return sorted(Path(f).resolve().relative_to(Path(location).resolve()).as_posix() for f in files)
    prefix = f"hf://datasets/{location}@{revision}/"
    rel = [f.removeprefix(prefix) for f in files]
    return sorted(rel) if all(f.startswith(prefix) for f in files) else []


def collect_source(
    spec: SourceSpec, params: CollectParams, revision: str, root: Path = Path(".")
) -> SourceMeta:
    """Read one source's metadata, split sizes, field statistics and sample rows.

    Nested fields are flattened (`answers.text`, see `flat_features`), so each can be an input or output.
    Raises SourceError (one line) when the source cannot be loaded; returns a `skipped` record when it
    loads but cannot serve (too few usable fields, media only, no train/validation rows).
    """
    import datasets

    if spec.path is not None:
        location, origin, kind = str(root / spec.path), f"local:{spec.path}", "local"
    else:
        location, origin, kind = str(spec.hub), f"hub:{spec.hub}", "hub"

    hub_rev = revision if kind == "hub" else None
    try:
        card = _card(spec, root, hub_rev)
        how = (
            _local_config(spec.id, Path(location), spec.config) if kind == "local" else {"name": spec.config}
        )
        builder = datasets.load_dataset_builder(location, revision=hub_rev, **how)
        # Without a card `configs:` block, datasets keys splits by NamedSplit, not str.
        data_files = {str(k): list(v) for k, v in (builder.config.data_files or {}).items()}
        split_names = list(data_files) or [str(s) for s in (builder.info.splits or {})]
    except SourceError:
        raise
    except Exception as exc:  # datasets raises many types for an unreadable repo; all mean "cannot load"
        raise SourceError(spec.id, f"cannot load: {first_line(exc, typed=True)}") from None

    card_data = card.data if card is not None else None
    license_ = getattr(card_data, "license", None) if card_data is not None else None
    if isinstance(license_, list):
        license_ = license_[0] if len(license_) == 1 else ",".join(license_)
    base: dict[str, Any] = dict(
        source_id=spec.id,
        origin=origin,
        kind=kind,
        location=spec.path if kind == "local" else spec.hub,
        config=spec.config or builder.config.name,
        revision=revision,
        license=license_,
        pretty_name=getattr(card_data, "pretty_name", None) if card_data is not None else None,
        languages=card_languages(card_data),
        description=_description(card, params.description_max_chars),
    )

    wanted = spec.splits or [s for s in split_names if not TEST_SPLIT.search(s)]
    missing = [s for s in wanted if s not in split_names]
    if missing:
        raise SourceError(spec.id, f"split {missing[0]!r} not found (has: {', '.join(split_names)})")
    if not wanted:
        return SourceMeta(**base, status="skipped", reason="no_train_or_validation_split")

    splits: list[SplitInfo] = []
    scanned: list[dict[str, Any]] = []
    features = builder.info.features
    try:
        for split in wanted:
            ds = _load(location, split, hub_rev, **how)
            rows = 0
            for table in ds.with_format("arrow").iter(batch_size=8192):
                if features is None and ds.features is None:
                    features = datasets.Features.from_arrow_schema(table.schema)
                if len(scanned) < params.stats_rows:
                    head = table.slice(0, params.stats_rows - len(scanned))
                    scanned.extend(flatten_table(head).to_pylist())
                rows += table.num_rows
            features = features or ds.features
            rel = split_files(data_files.get(split, []), kind, location, revision)
            splits.append(SplitInfo(name=split, num_rows=rows, files=rel))
    except Exception as exc:
        raise SourceError(spec.id, f"cannot read rows: {first_line(exc, typed=True)}") from None

    feats = []
    for name, dtype, names in flat_features(features or {}):
        stats = None if dtype in {"image", "audio"} else feature_stats([r.get(name) for r in scanned])
        feats.append(Feature(name=name, dtype=dtype, class_names=names, stats=stats))

    rng = random.Random(0)
    samples = rng.sample(scanned, min(params.sample_rows, len(scanned)))
    samples = [
        {f.name: cap_value(r.get(f.name), params.max_field_chars) for f in feats if not f.is_media}
        for r in samples
    ]
    meta = SourceMeta(**base, features=feats, splits=splits, samples=samples)

    usable = [f for f in feats if not f.is_media]
    if sum(s.num_rows for s in splits) == 0:
        return meta.model_copy(update={"status": "skipped", "reason": "no_rows"})
    if feats and not usable:
        return meta.model_copy(update={"status": "skipped", "reason": "only_media_fields"})
    if len(usable) <= 1:
        return meta.model_copy(update={"status": "skipped", "reason": "too_few_fields"})
    if kind == "local":  # a source organize will read: it must read every file as collect did
        check_organize_reads(spec.id, Path(location), splits)
    return meta

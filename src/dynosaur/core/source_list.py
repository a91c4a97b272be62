"""The sources file (`sources.yaml`) and the lock (`sources.lock`): the pipeline's sources beyond `params.yaml`.

`params.yaml: sources` suits a handful of hand-written sources. At the Hub's scale (thousands of configs) they
live in the sources file, which `dyno discover` appends to and `collect` reads as a plain file dependency:
DVC hashes it, never parses it, so a no-op `dvc repro` costs the same with 20 sources or 2,000 (DVC parses
every params file once per stage, and stores each param's value in dvc.lock).

Each entry of the sources file is a `SourceSpec` plus where it came from (`found_at`, `query`); only the spec
reaches collect's fingerprint, so rediscovering a source changes nothing downstream.

The lock pins every Hub source's revision (a branch, a tag or a sha) to the commit sha it pointed at when
`dyno refresh` last ran. collect reads revisions from the lock only, so `dvc repro` is a function of committed
files: a branch that moves on the Hub changes nothing until `dyno refresh` (which says what moved), and a
rebuild at a release tag reads the same Hub commits. The lock holds no timestamps: a refresh where nothing
moved rewrites it byte for byte.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dynosaur.core.errors import ParamsError, first_line
from dynosaur.core.io import atomic_write, read_json, write_json
from dynosaur.core.params import (
    Params,
    SourceSpec,
    first_error,
    read_params_file,
    unique_source_ids,
    unknown_key,
)

SOURCES_FILE = "sources.yaml"
LOCK_FILE = "sources.lock"
LOCK_VERSION = 1
SHA = re.compile(r"^[0-9a-f]{40}$")

HEADER = """\
# Sources beyond params.yaml: appended by `dyno discover`, editable by hand (the same fields as params.yaml's
# `sources`, plus found_at and query). `dyno refresh` pins each Hub source's revision in sources.lock.
"""


class SourceEntry(SourceSpec):
    """A source in the sources file: the spec collect reads, and how it was found (not part of the spec)."""

    found_at: str | None = None  # ISO 8601 UTC, when `dyno discover` added it
    query: str | None = None  # the discovery query that found it

    def spec(self) -> SourceSpec:
        return SourceSpec.model_validate(self.model_dump(exclude={"found_at", "query"}, exclude_none=True))


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: list[SourceEntry] = []
    # query → when it last ran (ISO 8601 UTC): `dyno discover --since last` lists what changed after it
    discoveries: dict[str, str] = {}

    @field_validator("sources")
    @classmethod
    def _unique_ids(cls, v: list[SourceEntry]) -> list[SourceEntry]:
        return unique_source_ids(v)


class Pin(BaseModel):
    """One Hub source's revision, resolved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hub: str
    revision: str  # as the spec names it ("main" when it names none)
    sha: str = Field(pattern=SHA.pattern)


class SourcesLock(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = LOCK_VERSION
    sources: dict[str, Pin] = {}  # source id → pin

    def sha(self, spec: SourceSpec) -> str | None:
        """The pinned commit of a Hub source, or None when it is not pinned (or pinned for another repo or
        revision: the spec changed since `dyno refresh`). A revision that is already a sha pins itself."""
        if spec.hub is None:
            return None
        pin = self.sources.get(spec.id)
        if pin is not None and pin.hub == spec.hub and pin.revision == wanted_revision(spec):
            return pin.sha
        return spec.revision if spec.revision and SHA.match(spec.revision) else None


def wanted_revision(spec: SourceSpec) -> str:
    return spec.revision or "main"


def _invalid(path: Path, exc: ValidationError, data: Any) -> ParamsError:
    err = first_error(exc)
    loc = ".".join(str(x) for x in err["loc"])
    if isinstance(data, dict) and err["loc"][:1] == ("sources",) and len(err["loc"]) > 1:
        entries = data.get("sources")
        index = err["loc"][1]
        if isinstance(entries, list) and isinstance(index, int) and isinstance(entries[index], dict):
            loc = f"sources[{entries[index].get('id')!r}]" + "".join(f".{x}" for x in err["loc"][2:])
    if err["type"] == "extra_forbidden":
        msg = unknown_key(SourcesFile if data is not None else SourcesLock, err["loc"])
    else:
        msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return ParamsError(f"{path}: {loc}: {msg}{more}")


def read_sources_file(path: Path) -> SourcesFile:
    """The sources file; an empty one when it does not exist. A mistake fails with one line (exit 2)."""
    if not path.exists():
        return SourcesFile()
    data = read_params_file(path) or {}
    try:
        return SourcesFile.model_validate(data)
    except ValidationError as exc:
        raise _invalid(path, exc, data) from None


def write_sources_file(path: Path, sources: SourcesFile) -> None:
    """Block-style YAML, one entry per source, keys in a fixed order: `git diff` shows only what was added."""
    import yaml

    data = sources.model_dump(mode="json", exclude_none=True)
    body = yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False, width=200)
    atomic_write(path, HEADER + body)


def add_to_sources_file(path: Path, added: list[SourceEntry], discoveries: dict[str, str]) -> None:
    """Add sources and discovery times to the sources file, editing it in place: every line already there
    (comments, hand-written blocks, quotes, flow entries) stays byte for byte, and the new entries are
    lines added at the end of `sources:` (a discovery run again changes its own time). A new file gets the
    header and block-style YAML."""
    current = read_sources_file(path)  # strict: a duplicate key or a bad entry stops here, nothing written
    updated = current.model_copy(
        update={"sources": [*current.sources, *added], "discoveries": {**current.discoveries, **discoveries}}
    )
    SourcesFile.model_validate(updated.model_dump())  # ids unique across the old and new entries
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if not text.strip() or not isinstance(read_params_file(path), dict):
        write_sources_file(path, updated)
        return
    atomic_write(path, _round_trip_add(text, added, discoveries))


def _round_trip_add(text: str, added: list[SourceEntry], discoveries: dict[str, str]) -> str:
    """`text` (a YAML mapping) with `added` appended to its `sources` and `discoveries` set, through
    ruamel.yaml's round trip (comments, quotes, key order and flow style kept; indentation as found)."""
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.util import load_yaml_guess_indent

    _, sequence, offset = load_yaml_guess_indent(text)
    nested = re.search(r"^[^\s#][^\n]*:[ \t]*\n( +)[^\s#-]", text, re.MULTILINE)
    yaml = YAML()  # round trip
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line that was not folded
    yaml.indent(mapping=len(nested.group(1)) if nested else 2, sequence=sequence or 2, offset=offset or 0)
    doc = yaml.load(text)
    sources = doc.get("sources")
    if not isinstance(sources, CommentedSeq):
        sources = doc["sources"] = CommentedSeq()
    if added and not sources:
        sources.fa.set_block_style()  # `sources: []` as shipped: entries one per line from now on
    for entry in added:
        sources.append(CommentedMap(entry.model_dump(mode="json", exclude_none=True)))
    found = doc.get("discoveries")
    if not isinstance(found, CommentedMap):
        found = doc["discoveries"] = CommentedMap()
    if discoveries and not found:
        found.fa.set_block_style()
    for query, at in discoveries.items():
        found[query] = at
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def read_lock(path: Path) -> SourcesLock:
    if not path.exists():
        return SourcesLock()
    try:
        return SourcesLock.model_validate(read_json(path))
    except ValidationError as exc:
        raise _invalid(path, exc, None) from None
    except ValueError as exc:  # not JSON
        raise ParamsError(f"{path}: not valid JSON ({first_line(exc)}); run `dyno refresh`") from None


def write_lock(path: Path, lock: SourcesLock) -> None:
    write_json(path, lock)


def all_sources(params: Params, sources_file: SourcesFile) -> list[SourceSpec]:
    """`params.yaml: sources`, then the sources file's; an id in both is an error (exit 2)."""
    specs = list(params.sources)
    seen = {s.id for s in specs}
    for entry in sources_file.sources:
        if entry.id in seen:
            raise ParamsError(
                f"source {entry.id!r} is in both params.yaml and {SOURCES_FILE}: keep one of them"
            )
        specs.append(entry.spec())
    return specs

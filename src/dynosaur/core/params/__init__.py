"""`params.yaml` as typed pydantic models: one per section, unknown keys forbidden, bounds checked.

`load_params()` is the only reader of `params.yaml`; a mistake fails there with one line naming the key path
(`ParamsError`, exit code 2), before any stage writes anything. The file must be UTF-8, and a key given twice
in one mapping (a second `llm:` block) is an error, not a silent override. Every number has a lower and an
upper bound (a test checks), so a value that validates can't overflow later: `organize.batch_rows: 1e20` or
`llm.timeout_s: 1e300` fail here, not as a traceback in a stage (issue 11).

The sections live by area: base.py (`Section`, bounds), corpus.py (sources, collect, hub, discover, generate,
filter, organize), llm.py, training.py (train, evaluate, continual); this module is the root `Params` and its
loading.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from pydantic import BaseModel, ValidationError, field_validator

from dynosaur.core.errors import ParamsError, first_line
from dynosaur.core.licenses import LicensePolicy
from dynosaur.core.params.base import MAX_CHARS, MAX_COUNT, MAX_SEED, MAX_THREADS, Section
from dynosaur.core.params.corpus import (
    EVAL_BENCHMARKS,
    HUB_REPO,
    SOURCE_ID,
    CollectParams,
    DecontaminateParams,
    DiscoverParams,
    FilterParams,
    GenerateParams,
    HubParams,
    OrganizeParams,
    SourceSpec,
)
from dynosaur.core.params.llm import ENV_NAME, BatchParams, LLMParams, LocalServerParams, Price
from dynosaur.core.params.training import (
    GGUF_MODELS,
    SCRATCH_MODELS,
    SCRATCH_PREFIX,
    STRATEGIES,
    VERSION,
    ContinualParams,
    EvaluateParams,
    LoRAParams,
    ReplayParams,
    TrainParams,
)

__all__ = [
    "EVAL_BENCHMARKS",
    "ENV_NAME",
    "GGUF_MODELS",
    "HUB_REPO",
    "MAX_CHARS",
    "MAX_COUNT",
    "MAX_SEED",
    "MAX_THREADS",
    "PARAMS_FILE",
    "SCRATCH_MODELS",
    "SCRATCH_PREFIX",
    "SOURCE_ID",
    "STRATEGIES",
    "VERSION",
    "BatchParams",
    "CollectParams",
    "ContinualParams",
    "DecontaminateParams",
    "DiscoverParams",
    "DuplicateKey",
    "EvaluateParams",
    "FilterParams",
    "GenerateParams",
    "HubParams",
    "LLMParams",
    "LoRAParams",
    "LocalServerParams",
    "OrganizeParams",
    "Params",
    "Price",
    "ReplayParams",
    "Section",
    "SourceSpec",
    "TrainParams",
    "first_error",
    "load_params",
    "load_yaml",
    "parse_params",
    "read_params_file",
    "unique_source_ids",
    "unknown_key",
]

PARAMS_FILE = "params.yaml"


class Params(Section):
    sources: list[SourceSpec] = []  # more in the sources file (`sources.yaml`, dynosaur.core.source_list)
    collect: CollectParams = CollectParams()
    discover: DiscoverParams = DiscoverParams()
    hub: HubParams = HubParams()
    generate: GenerateParams = GenerateParams()
    llm: LLMParams = LLMParams()
    filter: FilterParams = FilterParams()
    organize: OrganizeParams = OrganizeParams()
    licenses: LicensePolicy = LicensePolicy()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()

    @field_validator("sources")
    @classmethod
    def _unique_ids(cls, v: list[SourceSpec]) -> list[SourceSpec]:
        return unique_source_ids(v)


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


SourcesT = TypeVar("SourcesT", bound=_HasId)


def unique_source_ids(sources: list[SourcesT]) -> list[SourcesT]:
    """A source id names one source, in params.yaml and in sources.yaml alike: a repeat is a config error."""
    seen: set[str] = set()
    for s in sources:
        if s.id in seen:
            raise ValueError(f"duplicate source id {s.id!r}")
        seen.add(s.id)
    return sources


def _key_path(loc: tuple[Any, ...], data: Any) -> str:
    """`sources[1].id` rather than pydantic's `sources.1.id`; source entries are named by their id."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            ident = node[item].get("id") if isinstance(node, list) and isinstance(node[item], dict) else None
            parts[-1] += f"[{ident!r}]" if ident else f"[{item}]"
        elif item not in ("function-after", "function-before") and not str(item).startswith(
            ("function-", "literal")
        ):
            parts.append(str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts) or "params"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's type (`X`, `X | None`, `list[X]`, `dict[str, X]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if (found := _model_of(arg)) is not None:
            return found
    return None


def first_error(exc: ValidationError) -> Any:
    """The error to show first: a misspelt key makes two (the unknown key, and the key it meant as missing),
    and the unknown one says what to fix."""
    errors = exc.errors()
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def unknown_key(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """ "unknown key" for pydantic's `extra_forbidden` at `loc`, with a "did you mean" when a key of the model
    it sits in is close (`difflib`): `llm.modle` → `(did you mean 'model'?)`."""
    import difflib

    current: type[BaseModel] | None = model
    for item in loc[:-1]:
        if current is not None and isinstance(item, str) and item in current.model_fields:
            current = _model_of(current.model_fields[item].annotation)
        # list indexes and dict keys (`llm.prices.<model>`) stay in the model of their items
    key = str(loc[-1]) if loc else ""
    close = difflib.get_close_matches(key, list(current.model_fields) if current else [], n=1)
    return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"


def parse_params(data: Any, origin: str = PARAMS_FILE) -> Params:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{origin}: expected a mapping at the top level")
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        err = first_error(exc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = unknown_key(Params, err["loc"])
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ParamsError(f"{origin}: {_key_path(err['loc'], data)}: {msg}{more}") from None


def load_yaml(text: str) -> Any:
    """`yaml.safe_load`, strict about keys (a key given twice in one mapping raises `DuplicateKey`), with
    libyaml's C parser when PyYAML has it: ~10× faster on a list of 2,000 sources."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader's constructor)


class DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader, but a key given twice in one mapping is an error: YAML says keys are unique,
    and PyYAML silently keeps the last (a second `llm:` block would replace the first)."""


def _unique_mapping(loader: Any, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` merges; explicit keys override it
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            if key in seen:
                raise DuplicateKey(
                    None, None, f"duplicate key {key!r} on line {line} (first on line {seen[key]})"
                )
            seen[key] = line
        except TypeError:  # an unhashable key: construct_mapping below says so
            continue
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_params_file(path: Path) -> Any:
    """The parsed YAML of a file the user writes (params.yaml, sources.yaml); every way it can't be read is
    one `ParamsError` line, a key given twice included (with both line numbers)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the project root)") from None
    except UnicodeDecodeError as exc:
        raise ParamsError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ParamsError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        return load_yaml(text)
    except DuplicateKey as exc:
        raise ParamsError(f"{path}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({first_line(exc)})") from None
    except RecursionError:
        raise ParamsError(f"{path}: not valid YAML (nested too deeply)") from None


def load_params(path: str | Path | None = None) -> Params:
    path = Path(path or os.environ.get("DYNO_PARAMS", PARAMS_FILE))
    return parse_params(read_params_file(path), str(path))

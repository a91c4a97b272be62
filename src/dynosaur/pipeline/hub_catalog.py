"""The Hub's catalog for `dyno discover` and `dyno refresh`: listing datasets and pinning revisions, each answer
read as JSON and validated.

The `huggingface_hub` client trusts its server: a listing whose `lastModified` is in RFC 1123 form
(`Sun, 30 Nov 2025 10:00:00 GMT`, what some mirrors send) raises `ValueError: Cannot parse` half way through a
listing, a 200 with an HTML body raises `JSONDecodeError`, and a revision without `sha` becomes the string
"None". So the answers are read as JSON here and validated with models that take what real mirrors send:
no `cardData`, `siblings: null`, `tags` as one string, `gated: "auto"`, either date form. What is still
malformed is one line naming the dataset and the field (`HubDataset.problem`), and the caller skips that
dataset. Before any request, the token is refused over plain http to a host that is not loopback
(`sources.guard_hub_token`).
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dynosaur.core.errors import HubError
from dynosaur.pipeline.sources import guard_hub_token, hub_failure, hub_transport_errors

SHA = re.compile(r"^[0-9a-f]{40}$")


class HubAnswerError(ValueError):
    """An answer that is not what the Hub's API returns; its message is one line."""


def parse_hub_time(value: Any) -> datetime | None:
    """An ISO 8601 time (`2025-11-30T10:00:00.000Z`) or an RFC 1123 one (`Sun, 30 Nov 2025 10:00:00 GMT`),
    in UTC; None for null. Anything else raises ValueError."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a time: {value!r}")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"neither ISO 8601 nor RFC 1123: {text[:40]!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class ListedDataset(BaseModel):
    """One dataset of `GET /api/datasets` (the fields discovery asks for with `expand`)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=3, pattern=r"^[^/\s]+/[^/\s]+$")
    sha: str | None = None
    lastModified: datetime | None = None  # noqa: N815 (the Hub's name)
    downloads: int = 0
    tags: list[str] = []
    cardData: dict[str, Any] = {}  # noqa: N815
    gated: bool | str | None = False
    private: bool | None = False
    disabled: bool | None = False

    @field_validator("sha")
    @classmethod
    def _sha(cls, v: str | None) -> str | None:
        if v is not None and not SHA.match(v):
            raise ValueError(f"not a commit sha: {v[:50]!r}")
        return v

    @field_validator("lastModified", mode="before")
    @classmethod
    def _time(cls, v: Any) -> datetime | None:
        return parse_hub_time(v)

    @field_validator("downloads", mode="before")
    @classmethod
    def _downloads(cls, v: Any) -> Any:
        return 0 if v is None else v

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v: Any) -> Any:
        return [] if v is None else [v] if isinstance(v, str) else v

    @field_validator("cardData", mode="before")
    @classmethod
    def _card(cls, v: Any) -> Any:
        return {} if v is None else v

    @property
    def unavailable(self) -> bool:
        """Gated (`true`, `"auto"`, `"manual"`), private or disabled."""
        return bool(self.gated not in (False, None, "false", "") or self.private or self.disabled)


class PinnedRevision(BaseModel):
    """`GET /api/datasets/{repo}/revision/{revision}?expand=sha`: the commit a revision points at."""

    model_config = ConfigDict(extra="ignore")

    sha: str = Field(pattern=SHA.pattern)


def problem(what: str, exc: ValidationError) -> str:
    """One line naming `what` (a dataset) and the first bad field of its answer."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "the answer"
    msg = "missing" if err["type"] == "missing" else err["msg"].removeprefix("Value error, ")
    return f"{what}: the Hub's answer has a bad {field} ({msg})"


def validated(model: type[BaseModel], data: Any, what: str) -> Any:
    """`data` as `model`, or `HubAnswerError` with the one line of `problem`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise HubAnswerError(problem(what, exc)) from None


def json_body(response: Any, what: str) -> Any:
    """A Hub answer's JSON; an HTML page or any other body that is not JSON is `HubAnswerError`."""
    kind = (response.headers.get("content-type") or "no content type").split(";")[0].strip()
    try:
        return response.json()
    except ValueError:
        raise HubAnswerError(
            f"{what}: the Hub answered {response.status_code} with {kind}, not JSON (is HF_ENDPOINT a Hub?)"
        ) from None


# --- the Hub's catalog ---------------------------------------------------------------------------------


class Resolved(NamedTuple):
    sha: str | None
    error: str | None  # one line: why it did not resolve


def _hub_get(url: str, params: dict[str, Any] | None, timeout_s: float | None) -> Any:
    """GET a Hub API url (with the token, if any: see `hub_token_guard`); an error status raises the
    client's typed error (`RepositoryNotFoundError`, ...)."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    response = get_session().get(url, params=params, headers=build_hf_headers(), timeout=timeout_s)
    hf_raise_for_status(response)
    return response


def resolve_pins(
    wanted: list[tuple[str, str]], concurrency: int, timeout_s: float, *, allow_insecure_http: bool = False
) -> dict[tuple[str, str], Resolved]:
    """Each (repo, revision) → the commit sha it points at now, or why not (one line); `concurrency` requests
    in flight at once. Only `sha` is asked for (`expand`), so each answer is a few bytes; an answer without
    a valid sha, or not JSON, is that pair's one line."""
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import quote

    from huggingface_hub import constants
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    transport = hub_transport_errors()
    if wanted:
        guard_hub_token(allow_insecure_http)

    def one(key: tuple[str, str]) -> Resolved:
        repo, revision = key
        url = f"{constants.ENDPOINT}/api/datasets/{repo}/revision/{quote(revision, safe='')}"
        try:
            response = _hub_get(url, {"expand": ["sha"]}, timeout_s)
            answer = validated(PinnedRevision, json_body(response, repo), f"{repo}@{revision}")
            return Resolved(answer.sha, None)
        except RepositoryNotFoundError:
            return Resolved(None, f"{repo}: dataset not found on the Hub (or no access)")
        except RevisionNotFoundError:
            return Resolved(None, f"{repo}: revision {revision!r} not found on the Hub")
        except HubAnswerError as exc:
            return Resolved(None, str(exc))
        except transport as exc:
            return Resolved(None, f"{repo}: Hub unreachable: {hub_failure(exc)}")

    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=min(concurrency, len(wanted))) as pool:
        return dict(zip(wanted, pool.map(one, wanted), strict=True))


class HubDataset(BaseModel):
    """What discovery needs from one dataset of a Hub listing; with `problem` set, the one line that says why
    its answer is malformed (the caller skips it)."""

    model_config = ConfigDict(frozen=True)

    id: str
    sha: str | None = None
    last_modified: str | None = None  # ISO 8601 UTC
    downloads: int = 0
    tags: list[str] = []
    license: str | None = None
    configs: list[str] = []  # named in the card (`configs:` or `dataset_info`); [] → the default one
    unavailable: bool = False  # gated, private or disabled
    problem: str | None = None


def list_hub_datasets(
    *, search: str | None, task_category: str | None, language: str | None, allow_insecure_http: bool = False
) -> Iterator[HubDataset]:
    """The Hub's datasets, most recently modified first (`GET /api/datasets`, page after page). One task
    category and one language at most go to the Hub as filters; the caller filters the rest. A page that is
    not a JSON list fails the listing in one line; a malformed dataset in it comes with its `problem`."""
    from huggingface_hub import constants

    guard_hub_token(allow_insecure_http)
    wanted = ["cardData", "downloads", "lastModified", "sha", "tags", "gated", "private", "disabled"]
    query: dict[str, Any] = {"sort": "lastModified", "expand": wanted}
    if search:
        query["search"] = search
    tags = [
        f"task_categories:{task_category}" if task_category else "",
        f"language:{language}" if language else "",
    ]
    if any(tags):
        query["filter"] = [t for t in tags if t]
    params: dict[str, Any] | None = query
    url: str | None = f"{constants.ENDPOINT}/api/datasets"
    try:
        while url is not None:
            response = _hub_get(url, params, None)
            page = json_body(response, "listing Hub datasets")
            if not isinstance(page, list):
                raise HubAnswerError(
                    f"listing Hub datasets: the Hub answered a JSON {type(page).__name__}, not a list"
                )
            for item in page:
                yield _hub_dataset(item)
            url, params = response.links.get("next", {}).get("url"), None  # the next link has the query
    except HubAnswerError as exc:
        raise HubError(str(exc)) from None
    except hub_transport_errors() as exc:
        raise HubError(f"listing Hub datasets failed: {hub_failure(exc)}") from None


def _hub_dataset(item: Any) -> HubDataset:

    found = item.get("id") if isinstance(item, dict) else None
    name = found if isinstance(found, str) and found else "a listed dataset"
    try:
        info = ListedDataset.model_validate(item)
    except ValidationError as exc:
        return HubDataset(id=name, problem=problem(name, exc) + ": skipped")
    card = info.cardData
    license_ = card.get("license")
    if isinstance(license_, list):
        license_ = license_[0] if len(license_) == 1 else ",".join(map(str, license_))
    if license_ is None:
        license_ = next((t.split(":", 1)[1] for t in info.tags if t.startswith("license:")), None)
    return HubDataset(
        id=info.id,
        sha=info.sha,
        last_modified=info.lastModified.isoformat() if info.lastModified else None,
        downloads=info.downloads,
        tags=info.tags,
        license=str(license_) if license_ is not None else None,
        configs=card_config_names(card),
        unavailable=info.unavailable,
    )


def card_config_names(card: dict[str, Any]) -> list[str]:
    """Config names a dataset card declares: its `configs:` block, else its `dataset_info` list."""
    for key in ("configs", "dataset_info"):
        entries = card.get(key)
        if isinstance(entries, list):
            names = [str(e.get("config_name", "default")) for e in entries if isinstance(e, dict)]
            if len(names) > 1 or (names and names != ["default"]):
                return sorted(set(names))
    return []

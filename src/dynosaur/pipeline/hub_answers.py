"""What the Hub's API answers to `dyno discover` and `dyno refresh`, validated (pure: no Hub call here).

The `huggingface_hub` client trusts its server: a listing whose `lastModified` is in RFC 1123 form
(`Sun, 30 Nov 2025 10:00:00 GMT`, what some mirrors send) raises `ValueError: Cannot parse` half way through a
listing, a 200 with an HTML body raises `JSONDecodeError`, and a revision without `sha` becomes the string
"None". So the answers are read as JSON here and validated with models that take what real mirrors send:
no `cardData`, `siblings: null`, `tags` as one string, `gated: "auto"`, either date form. What is still
malformed is one line naming the dataset and the field (`problem`), and the caller skips that dataset.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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

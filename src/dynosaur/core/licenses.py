"""Licence policy (`params.yaml: licenses`): which sources may enter the corpus.

Licences are compared as lower-case SPDX-like ids (`mit`, `apache-2.0`, `cc-by-sa-4.0`). A source whose
licence is denied, or not in a non-empty allow list, or unknown while `unknown: exclude`, is left out with
the reason; every release records its licence breakdown.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator


class LicensePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[str] = []  # empty: every licence not denied
    deny: list[str] = []
    unknown: Literal["include", "exclude"] = "include"

    @field_validator("allow", "deny")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [x.strip().lower() for x in v]


UNKNOWN = {"", "unknown", "other", "none"}


def license_exclusion(license: str | None, policy: LicensePolicy) -> str | None:
    """None if the source may enter the corpus, else the reason it may not."""
    name = (license or "").strip().lower()
    if name in UNKNOWN:
        return "license_unknown" if policy.unknown == "exclude" else None
    if name in policy.deny:
        return f"license_denied: {name}"
    if policy.allow and name not in policy.allow:
        return f"license_not_allowed: {name}"
    return None

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


# The licence ids the Hugging Face Hub accepts in a card's `license:` field
# (https://huggingface.co/docs/hub/repositories-licenses). Anything else is published as `other`, named
# in `license_name`.
HUB_LICENSES = frozenset(
    """
    apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
    bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda
    cc cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0
    cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0
    cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0
    etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc h-research
    intel-research lppl-1.3c ms-pl apple-ascl apple-amlr mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql
    ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license llama2 llama3 llama3.1 llama3.2 llama3.3
    llama4 gemma unknown other
    """.split()
)

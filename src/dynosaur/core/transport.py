"""Where a secret may travel: over https, or over plain http to this machine (loopback) only.

Two secrets leave Dynosaur: the LLM provider's API key (`llm.base_url`) and the Hugging Face token
(`HF_ENDPOINT`). Over plain http anyone on the path reads them, so each is refused before any connection is
made unless its section says `allow_insecure_http: true` (a trusted private network): `llm.allow_insecure_http`,
`hub.allow_insecure_http`.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from dynosaur.core.errors import ParamsError


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def in_clear(url: str) -> bool:
    """Whether `url` is plain http to a host that is not loopback: a secret sent there travels in clear."""
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.hostname or "")


def check_hub_token_transport(endpoint: str, has_token: bool, allow_insecure_http: bool) -> None:
    """Refuse (`ParamsError`, exit 2) to send the Hugging Face token to `endpoint` in clear."""
    if not in_clear(endpoint) or not has_token or allow_insecure_http:
        return
    raise ParamsError(
        f"HF_ENDPOINT {endpoint.rstrip('/')}: the Hugging Face token would go in clear to a host that is not"
        " loopback; use https, unset HF_TOKEN (and `hf auth logout`), or set hub.allow_insecure_http: true in"
        " params.yaml"
    )

"""Talking to the Hugging Face Hub: repo ids checked, and whatever the Hub client raises (an HTTP status, an
unreachable endpoint, a malformed answer) turned into one typed line. The token never appears in it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from dynosaur.core.errors import DynoError, HubError, NotFound, ParamsError, PublishConflict, first_line

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
MANIFEST = "manifest.jsonl"


def _check_repo_id(repo_id: str) -> None:
    if not REPO_ID.match(repo_id):
        raise ParamsError(f"{repo_id!r} is not a Hub repo id of the form owner/name")


def _hub_error(exc: BaseException, repo_id: str, doing: str) -> DynoError:
    """A one-line error for a huggingface_hub exception (the token never appears in it)."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, RepositoryNotFoundError):
        return NotFound(f"{repo_id}: dataset repo not found on the Hub (or no access)")
    if status == 401:
        return HubError(f"{repo_id}: the Hub refused the token (set HF_TOKEN or run `hf auth login`)")
    if status == 403:
        return HubError(f"{repo_id}: not allowed to write to this repo with this token")
    if status in (409, 412):
        return PublishConflict(
            f"{repo_id}: the repo changed on the Hub since the last publish (someone else "
            "pushed?); nothing was published: inspect it and publish again"
        )
    if isinstance(exc, HfHubHTTPError) and status:
        return HubError(f"{repo_id}: Hub error {status} while {doing}; nothing half-published: run again")
    from huggingface_hub import constants

    return HubError(
        f"{repo_id}: cannot reach the Hub at {constants.ENDPOINT} while {doing} ({type(exc).__name__}):"
        " check the network or HF_ENDPOINT, then run again"
    )


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What the Hub client raises for HTTP statuses and for connections that fail (its HTTP library's
    base error: huggingface_hub's HfHubHTTPError derives from it)."""
    from huggingface_hub.errors import HfHubHTTPError

    bases = {base for base in HfHubHTTPError.__mro__[1:] if base.__name__ == "HTTPError"}
    return (HfHubHTTPError, OSError, *bases)


@contextlib.contextmanager
def _hub_call(repo_id: str, doing: str) -> Iterator[None]:
    """Turn what the Hub client raises into one line: an HTTP status, an unreachable endpoint, or an answer
    that is not what the Hub's API returns (a missing key, a body that is not JSON)."""
    try:
        yield
    except DynoError:
        raise
    except _transport_errors() as exc:
        raise _hub_error(exc, repo_id, doing) from None
    except (KeyError, TypeError, ValueError) as exc:  # a JSON body without the fields the client reads
        raise HubError(
            f"{repo_id}: the Hub answered with a malformed response while {doing}"
            f" ({first_line(exc, typed=True)}): check HF_ENDPOINT, then run again"
        ) from None

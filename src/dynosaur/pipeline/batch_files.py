"""The Batch API's files: the request lines generate uploads and the answer rows it reads back.

Requests are OpenAI-format JSONL (`{"custom_id", "method", "url", "body"}`), cut into chunks of at most so
many lines and bytes; each chunk is named by its digest (model, attempt, sorted custom_ids), the idempotency
key that dynosaur.pipeline.batch records before it uploads anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from dynosaur.core.io import canonical_json
from dynosaur.core.records import Usage
from dynosaur.pipeline.llm import ChatResult

ENDPOINT = "/v1/chat/completions"


def chunk_digest(model_identity: str, attempt: int, custom_ids: list[str]) -> str:
    text = canonical_json({"model": model_identity, "attempt": attempt, "custom_ids": sorted(custom_ids)})
    return hashlib.sha256(text.encode()).hexdigest()


def input_line(custom_id: str, body: dict[str, Any]) -> bytes:
    """One line of a batch input file (OpenAI format)."""
    line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
    return (json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n").encode()


def split_chunks(
    lines: list[tuple[str, bytes]], max_requests: int, max_bytes: int
) -> list[list[tuple[str, bytes]]]:
    """Consecutive chunks of at most `max_requests` lines and `max_bytes` bytes (a longer line goes alone)."""
    chunks: list[list[tuple[str, bytes]]] = []
    size = 0
    for key, line in lines:
        if not chunks or len(chunks[-1]) >= max_requests or (chunks[-1] and size + len(line) > max_bytes):
            chunks.append([])
            size = 0
        chunks[-1].append((key, line))
        size += len(line)
    return chunks


def parse_row(row: dict[str, Any], cost: Callable[[int, int], float]) -> ChatResult:
    """One line of a batch's output or error file as a ChatResult (an `error` when it is not an answer)."""
    response = row.get("response") or {}
    error = row.get("error")
    if error:
        return ChatResult(
            error=f"batch row: {error.get('code') or 'error'}: {error.get('message') or ''}".strip()
        )
    status = response.get("status_code")
    body = response.get("body") or {}
    if status != 200:
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        return ChatResult(error=f"batch row: HTTP {status}: {message or 'no message'}")
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices:
        return ChatResult(error="bad response: no choices")
    usage_json = body.get("usage") or {}
    usage = Usage(
        prompt_tokens=usage_json.get("prompt_tokens") or 0,
        completion_tokens=usage_json.get("completion_tokens") or 0,
    )
    return ChatResult(
        content=(choices[0].get("message") or {}).get("content") or "",
        finish_reason=choices[0].get("finish_reason"),
        usage=usage,
        cost_usd=round(cost(usage.prompt_tokens, usage.completion_tokens), 8),
    )

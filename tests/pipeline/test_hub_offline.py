"""With `HF_HUB_OFFLINE=1`, `dyno discover` says so in a whole line, not huggingface_hub's cut mid-word."""

from __future__ import annotations

import pytest

from dynosaur.core.errors import DynoError
from dynosaur.pipeline.hub_catalog import list_hub_datasets


def test_listing_offline_says_so_whole(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read once, when huggingface_hub was imported
    with pytest.raises(DynoError) as exc:
        list(list_hub_datasets(search=None, task_category="text-classification", language="en"))
    assert str(exc.value) == (
        "listing Hub datasets failed: HF_HUB_OFFLINE is set (offline mode); unset it to reach the Hub"
    )

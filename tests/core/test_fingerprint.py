"""`dynosaur.core.fingerprint`: one helper; tuning params never change a fingerprint, output params always do."""

from __future__ import annotations

from dynosaur.core.fingerprint import fingerprint, output_params
from dynosaur.core.params import OrganizeParams


def test_tuning_fields_are_left_out_and_output_fields_kept():
    p = OrganizeParams()
    assert "batch_rows" not in output_params(p)
    assert output_params(p)["max_output_chars"] == p.max_output_chars


def test_batch_rows_does_not_move_organizes_fingerprint_but_an_output_param_does():
    base = fingerprint(inputs=["task"], params=OrganizeParams(), version=1)
    assert fingerprint(inputs=["task"], params=OrganizeParams(batch_rows=7), version=1) == base
    assert fingerprint(inputs=["task"], params=OrganizeParams(max_output_chars=99), version=1) != base
    assert fingerprint(inputs=["task"], params=OrganizeParams(), version=2) != base
    assert fingerprint(inputs=["other"], params=OrganizeParams(), version=1) != base
    assert base.startswith("sha256:")

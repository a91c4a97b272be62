"""`dynosaur.core.licenses`: which sources the licence policy lets into the corpus, and the policy's params."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dynosaur.core.errors import ParamsError
from dynosaur.core.licenses import LicensePolicy, license_exclusion
from dynosaur.core.params import parse_params


@pytest.mark.parametrize(
    "license, policy, reason",
    [
        # the default: everything, unknown included
        ("mit", {}, None),
        (None, {}, None),
        # deny
        ("gpl-3.0", {"deny": ["gpl-3.0"]}, "license_denied: gpl-3.0"),
        ("mit", {"deny": ["gpl-3.0"]}, None),
        ("mit", {"allow": ["mit"], "deny": ["mit"]}, "license_denied: mit"),  # deny wins
        # allow
        ("mit", {"allow": ["mit", "apache-2.0"]}, None),
        ("cc-by-nc-4.0", {"allow": ["mit", "apache-2.0"]}, "license_not_allowed: cc-by-nc-4.0"),
        # unknown
        (None, {"unknown": "exclude"}, "license_unknown"),
        ("", {"unknown": "exclude"}, "license_unknown"),
        ("  ", {"unknown": "exclude"}, "license_unknown"),
        ("unknown", {"unknown": "exclude"}, "license_unknown"),
        ("other", {"unknown": "exclude"}, "license_unknown"),
        ("None", {"unknown": "exclude"}, "license_unknown"),
        (None, {"unknown": "include", "allow": ["mit"]}, None),  # unknown is judged by `unknown` alone
        (None, {"unknown": "include", "deny": ["unknown"]}, None),
        ("mit", {"unknown": "exclude"}, None),
        # case and spaces
        ("MIT", {"deny": ["mit"]}, "license_denied: mit"),
        (" Apache-2.0 ", {"allow": ["APACHE-2.0"]}, None),
        ("GPL-3.0", {"allow": ["Mit"]}, "license_not_allowed: gpl-3.0"),
        ("UNKNOWN", {"unknown": "exclude"}, "license_unknown"),
        ("Other", {"unknown": "include"}, None),
    ],
)
def test_license_exclusion(license, policy, reason):
    assert license_exclusion(license, LicensePolicy(**policy)) == reason


def test_policy_lower_cases_and_strips_its_lists():
    policy = LicensePolicy(allow=["MIT", " Apache-2.0 "], deny=["GPL-3.0"])
    assert policy.allow == ["mit", "apache-2.0"]
    assert policy.deny == ["gpl-3.0"]
    assert policy.unknown == "include"


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"alow": ["mit"]}, "alow"),
        ({"unknown": "maybe"}, "unknown"),
        ({"unknown": "Exclude"}, "unknown"),
        ({"deny": "mit"}, "deny"),
    ],
)
def test_policy_rejects_bad_values(bad, field):
    with pytest.raises(ValidationError) as err:
        LicensePolicy(**bad)
    assert [e["loc"][0] for e in err.value.errors()] == [field]


def test_policy_is_frozen():
    policy = LicensePolicy()
    with pytest.raises(ValidationError):
        policy.unknown = "exclude"  # type: ignore[misc]


@pytest.mark.parametrize(
    "licenses, where",
    [
        ({"unknown": "maybe"}, "licenses.unknown"),
        ({"allow": ["mit"], "permit": ["gpl"]}, "licenses.permit"),
        ({"deny": "gpl-3.0"}, "licenses.deny"),
    ],
)
def test_params_errors_name_the_key(licenses, where):
    with pytest.raises(ParamsError) as err:
        parse_params({"licenses": licenses})
    assert f": {where}:" in str(err.value)
    assert err.value.exit_code == 2


def test_params_give_a_lower_cased_policy():
    params = parse_params({"licenses": {"allow": ["MIT"], "deny": ["GPL-3.0"], "unknown": "exclude"}})
    assert params.licenses == LicensePolicy(allow=["mit"], deny=["gpl-3.0"], unknown="exclude")
    assert parse_params({}).licenses == LicensePolicy()

"""A platform's accounts, without the network: which accounts a run reads, how a failure is told, and
what the run as a whole exits with (`stripe_source.account_report`)."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
import stripe

from stripe_source.account_report import AccountsReport, classify
from stripe_source.accounts import ALL, parse_accounts
from stripe_source.errors import (
    EXIT_OK,
    EXIT_PERMISSION,
    EXIT_REAUTHENTICATE,
    EXIT_SOME_ACCOUNTS_FAILED,
    EXIT_STRIPE_UNAVAILABLE,
    InvalidInput,
    ReauthenticationRequired,
    StripeUnavailable,
)

RESOURCES = ["charges", "customers"]


def scope(account: str) -> SimpleNamespace:
    return SimpleNamespace(account=account, api=SimpleNamespace(stats=SimpleNamespace(requests=3)),
                           release=lambda: None)


def report_of(*accounts: str) -> AccountsReport:
    report = AccountsReport()
    report.expect([scope(a) for a in accounts], RESOURCES)
    return report


@pytest.mark.parametrize(("given", "expected"), [
    (None, None),
    ("all", ALL),
    (" ALL ", ALL),
    ("acct_1a,acct_1b", ("acct_1a", "acct_1b")),
    ("acct_1a, acct_1b acct_1a", ("acct_1a", "acct_1b")),
    (["acct_1b", "acct_1a"], ("acct_1b", "acct_1a")),
])
def test_accounts_are_all_or_ids(given, expected):
    assert parse_accounts(given) == expected


@pytest.mark.parametrize("given", ["", "acct_1a,cus_1", ["acct_1a", 7], 12, {"acct_1a": 1}])
def test_anything_else_is_bad_input(given):
    with pytest.raises(InvalidInput):
        parse_accounts(given)


def account_invalid() -> stripe.PermissionError:
    body = {"error": {"code": "account_invalid", "message": "The provided key 'sk_test_****abcd' does not have "
                      "access to account 'acct_1x' (or that account does not exist). Application access may have "
                      "been revoked.", "type": "invalid_request_error"}}
    return stripe.PermissionError(body["error"]["message"], http_status=403, json_body=body)


def test_a_failure_is_told_by_its_kind_without_the_key():
    status, code, line = classify(account_invalid())
    assert (status, code) == ("revoked", EXIT_REAUTHENTICATE) and "sk_test" not in line
    missing = stripe.PermissionError("... Having the 'rak_charge_read' permission would allow this request to "
                                     "continue.", http_status=403)
    assert classify(missing)[:2] == ("failed", EXIT_PERMISSION) and "rak_charge_read" in classify(missing)[2]
    assert classify(StripeUnavailable("Stripe did not answer"))[:2] == ("failed", EXIT_STRIPE_UNAVAILABLE)
    assert classify(ReauthenticationRequired("the key is invalid"))[1] == EXIT_REAUTHENTICATE


def test_an_account_ends_when_every_resource_has_read_it_and_is_told_once():
    told = []
    report = report_of("acct_1a")
    report.on_account = told.append
    report.finish("acct_1a", "charges", Counter(charges=2))
    assert not told
    report.finish("acct_1a", "customers", Counter(customers=5))
    report.close()
    assert [(o.account, o.status, sum(o.rows.values()), o.requests) for o in told] == [("acct_1a", "loaded", 7, 3)]


def test_the_run_exits_0_when_all_loaded_7_when_some_failed_and_the_failures_code_when_none_loaded():
    report = report_of("acct_1a", "acct_1b")
    for account in ("acct_1a", "acct_1b"):
        for resource in RESOURCES:
            report.finish(account, resource, Counter())
    assert (report.exit_code, report.summary()["status"]) == (EXIT_OK, "loaded")

    report = report_of("acct_1a", "acct_1b")
    report.finish("acct_1a", "charges", Counter(charges=1))
    report.finish("acct_1a", "customers", Counter())
    report.fail("acct_1b", "charges", account_invalid())
    assert report.lost_access("acct_1b")
    report.pass_over("acct_1b", "customers")  # no use asking again
    assert (report.exit_code, report.summary()["status"]) == (EXIT_SOME_ACCOUNTS_FAILED, "some_accounts_failed")
    summary = report.summary({"charges": 1})
    assert [a["status"] for a in summary["accounts"]] == ["loaded", "revoked"]
    assert summary["rows"] == 1 and summary["accounts"][1]["error"].startswith("the platform's key has no access")

    report = report_of("acct_1a", "acct_1b")
    report.fail("acct_1a", "charges", StripeUnavailable("down"))
    report.fail("acct_1b", "charges", account_invalid())
    report.close()
    assert report.exit_code == EXIT_STRIPE_UNAVAILABLE  # the first failure's

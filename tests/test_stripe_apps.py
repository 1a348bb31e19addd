"""Stripe Apps OAuth through the CLI against the emulator: install, runs that outlive their token,
concurrent runs, revocation, disconnect.

Every test checks that no token or key shows up in what the user sees or in the log.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator

import pytest

from stripe_emulator import Emulator
from stripe_source.cli.commands import main
from tests.app_connection import connect_app, stored, token_posts
from tests.helpers import assert_equals_emulator, ids
from tests.processes import finish, start_run

ACCESS_LIFETIME = 3600


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the strictest setting: even debug logs must not carry tokens


def never_shown(secrets: list[str], capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture) -> str:
    out, err = capsys.readouterr()
    for secret in secrets:
        assert secret not in out + err and secret not in caplog.text
    return out + err


def issued_within(moment: int, before: int, after: int, lifetime: int) -> bool:
    """Whether a token expiring at `moment` was issued on Stripe's clock between `before` and `after`
    (a busy machine may take seconds between them)."""
    return before + lifetime <= moment <= after + lifetime


def secrets_of(emu, creds: dict) -> list[str]:
    return [creds["api_key"], creds["refresh_token"], emu.api_key]


def run(db, *args: str) -> int:
    return main(["run", "--duckdb-path", str(db), *args])


def test_the_app_flow_end_to_end(fresh_emulator, dlt_project, monkeypatch, capsys, caplog):
    emu = fresh_emulator
    before = emu.now()
    assert connect_app(emu, monkeypatch, "--app-id", emu.apps.app_id) == 0
    creds = stored(dlt_project)
    account = emu.connected_account_ids[0]
    assert creds["stripe_account"] == account and creds["scope"] == "stripe_apps"
    assert creds["client_id"] == emu.apps.client_id and creds["app_id"] == emu.apps.app_id
    # on Stripe's clock, not this machine's
    assert issued_within(creds["expires_at"], before, emu.now(), ACCESS_LIFETIME)
    assert issued_within(creds["refresh_expires_at"], before, emu.now(), 365 * 86400)
    assert stat.S_IMODE((dlt_project / ".dlt" / "secrets.toml").stat().st_mode) == 0o600
    shown = never_shown(secrets_of(emu, creds), capsys, caplog)
    assert "/oauth/v2/authorize?client_id=" in shown  # the link is always printed, for machines without a browser
    assert "Connection successful!" in shown and f"Account:  {account}" in shown and "Mode:     test" in shown
    assert "Access token expires:" in shown and "(in 60 min)" in shown and "Refresh token expires:" in shown

    db = dlt_project / "app.duckdb"
    assert run(db, "--resources", "customers") == 0  # `run` uses what `connect` stored, no flag
    assert set(ids(db, "customers")) == {c["id"] for c in emu.objects("customers", account=account)}

    emu.advance(seconds=ACCESS_LIFETIME + 60)  # the access token expired: --check renews it and says so
    before = emu.now()
    assert main(["connect", "--check"]) == 0
    renewed = stored(dlt_project)
    assert renewed["refresh_token"] != creds["refresh_token"]
    assert issued_within(renewed["expires_at"], before, emu.now(), ACCESS_LIFETIME)
    assert "(in 60 min)" in never_shown(secrets_of(emu, creds) + secrets_of(emu, renewed), capsys, caplog)


def test_an_unlisted_redirect_uri_gets_no_code(fresh_emulator, dlt_project, monkeypatch, capsys):
    fresh_emulator.apps.allowed_redirect_uris = ["https://example.com/callback/stripe"]
    assert connect_app(fresh_emulator, monkeypatch, "--timeout", "1") == 3
    assert "No answer from Stripe's consent page" in capsys.readouterr().err
    assert not (dlt_project / ".dlt" / "secrets.toml").exists()


@pytest.fixture
def paged_world() -> Iterator[Emulator]:
    """Big enough that lists take several pages (~50 requests for a full load)."""
    with Emulator(seed=13, scale=3000) as emu:
        yield emu


def test_a_backfill_that_outlives_its_access_token_loads_exactly_the_emulators_rows(
    paged_world, dlt_project, monkeypatch, capsys, caplog
):
    emu = paged_world
    assert connect_app(emu, monkeypatch, account=emu.account_id) == 0  # the app installed on the big account
    creds = stored(dlt_project)
    count = emu.count_request

    def an_hour_passes_mid_run(endpoint: str) -> int:
        number = count(endpoint)
        if number == 40:  # pages are being read on many threads: all their tokens expire at once
            emu.advance(seconds=ACCESS_LIFETIME + 1)
        return number

    monkeypatch.setattr(emu, "count_request", an_hour_passes_mid_run)
    emu.reset_stats()
    db = dlt_project / "backfill.duckdb"
    assert run(db) == 0
    assert emu.stats()["requests_total"] > 40  # the hour passed mid-run, not at its end
    assert emu.stats()["by_status"].get(401, 0) >= 1  # Stripe refused the expired token ...
    assert token_posts(emu) == 1  # ... which was renewed once, for every thread
    assert_equals_emulator(emu, db)  # every page once: none lost, none read twice
    renewed = stored(dlt_project)
    assert renewed["refresh_token"] != creds["refresh_token"]  # the rotation was kept
    never_shown(secrets_of(emu, creds) + secrets_of(emu, renewed), capsys, caplog)


def test_a_token_close_to_expiry_is_renewed_before_the_run_starts(fresh_emulator, dlt_project, monkeypatch):
    emu = fresh_emulator
    assert connect_app(emu, monkeypatch) == 0
    emu.advance(seconds=ACCESS_LIFETIME - 120)  # two minutes left: a run must not start with it
    emu.reset_stats()
    before = emu.now()
    assert run(dlt_project / "soon.duckdb", "--resources", "customers") == 0
    assert token_posts(emu) == 1 and emu.stats()["by_status"].get(401, 0) == 0
    assert issued_within(stored(dlt_project)["expires_at"], before, emu.now(), ACCESS_LIFETIME)


def test_two_concurrent_runs_with_one_stored_refresh_token_both_succeed(fresh_emulator, dlt_project, monkeypatch):
    emu = fresh_emulator
    account = emu.connected_account_ids[0]
    assert connect_app(emu, monkeypatch) == 0
    emu.advance(seconds=ACCESS_LIFETIME + 60)  # both start with an expired token: both must renew it
    emu.reset_stats()
    runs = [start_run(emu, dlt_project / f"{n}.duckdb", "--pipeline-name", f"stripe_{n}", "--resources", "customers")
            for n in ("a", "b")]
    for process in runs:
        code, _, err = finish(process, timeout=120)
        assert code == 0, err
    assert token_posts(emu) == 1  # one rotation, shared: neither run invalidated the other's token
    expected = {c["id"] for c in emu.objects("customers", account=account)}
    for n in ("a", "b"):
        assert set(ids(dlt_project / f"{n}.duckdb", "customers")) == expected
    assert main(["connect", "--check"]) == 0  # and the stored connection still works


def test_a_revoked_app_connection_exits_3_before_loading_anything(fresh_emulator, dlt_project, monkeypatch, capsys,
                                                                   caplog):
    emu = fresh_emulator
    account = emu.connected_account_ids[0]
    assert connect_app(emu, monkeypatch) == 0
    db = dlt_project / "revoked.duckdb"
    assert run(db, "--resources", "customers") == 0
    creds = stored(dlt_project)
    capsys.readouterr()
    emu.apps.uninstall_from_dashboard(account)  # the account's owner uninstalls the app
    emu.create("customers", account=account)
    assert run(db, "--resources", "customers") == 3
    err = never_shown(secrets_of(emu, creds), capsys, caplog).strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"Error: Stripe rejected the credentials for account {account}")
    assert "re-authenticate with `stripe-pipeline connect`" in err
    assert len(ids(db, "customers")) == len(emu.objects("customers", account=account)) - 1  # nothing loaded


def test_connecting_again_replaces_a_dead_connection(fresh_emulator, dlt_project, monkeypatch):
    # the stored tokens are of the same account and app, but older: the new ones must win
    emu = fresh_emulator
    assert connect_app(emu, monkeypatch) == 0
    emu.apps.uninstall_from_dashboard(emu.connected_account_ids[0])
    assert main(["connect", "--check"]) == 3
    emu.advance(seconds=5)
    assert connect_app(emu, monkeypatch) == 0
    assert run(dlt_project / "again.duckdb", "--resources", "customers") == 0


def test_disconnect_uninstalls_the_app(fresh_emulator, dlt_project, monkeypatch, capsys, caplog):
    emu = fresh_emulator
    assert connect_app(emu, monkeypatch, "--app-id", emu.apps.app_id) == 0
    creds = stored(dlt_project)
    assert emu.connected_account_ids[0] in emu.apps.installs
    assert main(["disconnect"]) == 0
    shown = never_shown(secrets_of(emu, creds), capsys, caplog)
    assert f"Uninstalled the app from {emu.connected_account_ids[0]}" in shown
    assert stored(dlt_project) == {} and emu.apps.installs == {}
    assert main(["run", "--duckdb-path", str(dlt_project / "gone.duckdb")]) == 2  # nothing stored any more


def test_disconnect_without_the_app_id_says_what_to_do_in_the_dashboard(fresh_emulator, dlt_project, monkeypatch,
                                                                        capsys):
    emu = fresh_emulator
    assert connect_app(emu, monkeypatch) == 0
    capsys.readouterr()
    assert main(["disconnect"]) == 0
    out = capsys.readouterr().out
    assert "uninstall the app from its settings page in the Stripe Dashboard" in out and "--app-id" in out
    assert stored(dlt_project) == {}


def test_a_denied_install_stores_nothing(fresh_emulator, dlt_project, monkeypatch, capsys):
    fresh_emulator.apps.consent = "deny"
    assert connect_app(fresh_emulator, monkeypatch) == 3
    err = capsys.readouterr().err
    assert "Access was denied" in err and "`stripe-pipeline connect --app --client-id ca_...`" in err
    assert not (dlt_project / ".dlt" / "secrets.toml").exists()


def test_bad_app_options_fail_before_any_request(fresh_emulator, dlt_project, monkeypatch, capsys):
    fresh_emulator.reset_stats()
    assert main(["connect", "--app", "--api-base", fresh_emulator.api_base]) == 2
    assert "--client-id" in capsys.readouterr().err
    assert main(["connect", "--app", "--oauth", "--client-id", "ca_1"]) == 2
    assert main(["connect", "--app", "--client-id", "ca_1", "--app-id", "ca_2"]) == 2
    assert fresh_emulator.stats()["requests_total"] == 0

"""The connection step against the emulator: keys, Connect OAuth, storage, re-authentication.

Every test that handles a key checks the key never shows up in stdout, stderr or the log.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import stat
import sys
import threading
from pathlib import Path

import dlt
import pytest
import requests
import tomlkit

from stripe_source.cli import connect as connect_cli
from stripe_source.client import StripeApi
from stripe_source.connection import (
    CallbackServer,
    OAuthFailed,
    authorize_url,
    exchange_code,
    load_credentials,
    refresh_access_token,
    refresher_for,
    remove_credentials,
    run_oauth_flow,
    save_credentials,
    save_endpoints,
    validate,
)
from stripe_source.credentials import StripeCredentials
from stripe_source.errors import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_PERMISSION,
    EXIT_REAUTHENTICATE,
    ReauthenticationRequired,
)

# --- helpers


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="stripe-pipeline")
    connect_cli.add_commands(parser.add_subparsers(required=True))
    args = parser.parse_args(list(argv))
    return args.handler(args)


def connect_with_key(emu, key: str, *extra: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(key + "\n"))
    return cli("connect", "--api-key-stdin", "--api-base", emu.api_base, "--connect-base", emu.connect_base, *extra)


def stored(project: Path) -> dict:
    doc = tomlkit.parse((project / ".dlt" / "secrets.toml").read_text()).unwrap()
    return doc.get("sources", {}).get("stripe", {}).get("credentials", {})


def follow(url: str) -> None:
    """The user's browser: open the authorize URL and follow Stripe's redirect to the callback."""
    threading.Thread(target=requests.get, args=(url,), kwargs={"timeout": 10}, daemon=True).start()


def assert_never_shown(secret: str, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture) -> str:
    out, err = capsys.readouterr()
    assert secret not in out
    assert secret not in err
    assert secret not in caplog.text
    return out + err


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the strictest setting: even debug logs must not carry keys


# --- API keys


def test_secret_key_connects_and_is_stored(fresh_emulator, dlt_project, monkeypatch, capsys, caplog):
    key = fresh_emulator.add_key(kind="secret")
    assert connect_with_key(fresh_emulator, key, monkeypatch=monkeypatch) == EXIT_OK
    shown = assert_never_shown(key, capsys, caplog)
    assert "Connection successful!" in shown
    assert fresh_emulator.account_id in shown
    assert "Mode:     test" in shown
    assert "Key type: secret" in shown
    assert stored(dlt_project) == {"api_key": key}
    # the source reads them back through dlt's normal resolution, endpoints included
    assert str(load_credentials().api_key) == key
    assert dlt.config["sources.stripe.api_base"] == fresh_emulator.api_base
    assert dlt.config["sources.stripe.connect_base"] == fresh_emulator.connect_base


def test_restricted_key_lists_what_it_can_and_cannot_read(fresh_emulator, dlt_project, monkeypatch, capsys, caplog):
    key = fresh_emulator.add_key(kind="restricted", permissions={"charges": "read", "customers": "read"})
    assert connect_with_key(fresh_emulator, key, monkeypatch=monkeypatch) == EXIT_OK
    shown = assert_never_shown(key, capsys, caplog)
    assert "Key type: restricted" in shown
    report = validate(key, fresh_emulator.api_base)
    assert {"charges", "customers"} <= set(report.readable)
    assert "invoices" in report.unreadable and report.unreadable["invoices"] == "rak_invoice_read"
    assert "invoices (needs 'rak_invoice_read')" in shown
    assert "invoice_line_items" not in report.readable | report.unreadable  # shares invoices' permission


def test_the_permission_report_covers_sub_list_and_fan_out_tables(fresh_emulator, dlt_project, monkeypatch, capsys):
    # a fan-out reads its parent's list and its own endpoint: each permission is checked where it is needed
    from stripe_source.cli.commands import main

    key = fresh_emulator.add_key(kind="restricted", permissions={"customers": "read", "events": "read",
                                                                 "balance": "read"})
    report = validate(key, fresh_emulator.api_base)
    assert report.unreadable["payment_methods"] == "rak_payment_method_read"
    assert {"customers", "balance"} <= set(report.readable)
    assert report.unreadable["checkout_sessions"] == "rak_checkout_session_read"
    monkeypatch.setenv("STRIPE_API_KEY", key)
    db = dlt_project / "fan_out.duckdb"
    run = ["run", "--api-base", fresh_emulator.api_base, "--duckdb-path", str(db)]
    assert main([*run, "--resources", "customers,payment_methods"]) == EXIT_PERMISSION
    assert "payment_methods (needs 'rak_payment_method_read')" in capsys.readouterr().err
    assert not db.exists()
    assert main([*run, "--resources", "customers,balance"]) == EXIT_OK


def test_restricted_key_without_events_is_refused_before_it_loads(fresh_emulator, dlt_project, monkeypatch, capsys,
                                                                  caplog):
    # runs after the first follow changes through /v1/events: without that permission the first
    # run would pass and every later one fail, so the first one says so
    from stripe_source.cli.commands import main

    tables = {"charges": "read", "customers": "read"}
    key = fresh_emulator.add_key(kind="restricted", permissions=tables)
    db = dlt_project / "restricted.duckdb"
    run = ["run", "--api-base", fresh_emulator.api_base, "--resources", "charges,customers", "--duckdb-path", str(db)]
    monkeypatch.setenv("STRIPE_API_KEY", key)
    assert main(run) == EXIT_PERMISSION
    shown = assert_never_shown(key, capsys, caplog)
    assert "events (needs 'rak_event_read', to follow updates and deletes)" in shown
    assert len(shown.strip().splitlines()) == 1 and "--resources" not in shown  # leaving events out is no fix
    assert not db.exists()
    with_events = fresh_emulator.add_key(kind="restricted", permissions={**tables, "events": "read"})
    monkeypatch.setenv("STRIPE_API_KEY", with_events)
    assert main(run) == EXIT_OK
    assert main(run) == EXIT_OK  # the incremental run reads events


def test_a_new_connect_goes_to_stripe_not_to_a_server_stored_before(fresh_emulator, dlt_project, monkeypatch,
                                                                     capsys, caplog):
    # after trying the emulator (`connect --api-base ...`), connecting a key without the flag must
    # not send it to the emulator's stored URL; here the environment stands in for Stripe's host
    key = fresh_emulator.add_key(kind="secret")
    save_endpoints("http://127.0.0.1:9", "http://127.0.0.1:9")  # stored by an earlier connect
    monkeypatch.setenv("STRIPE_API_BASE", fresh_emulator.api_base)
    monkeypatch.setattr(sys, "stdin", io.StringIO(key + "\n"))
    assert cli("connect", "--api-key-stdin") == EXIT_OK
    assert_never_shown(key, capsys, caplog)
    config = (dlt_project / ".dlt" / "config.toml").read_text()
    assert "127.0.0.1" not in config and "api_base" not in config


def test_unknown_key_asks_to_reauthenticate(fresh_emulator, dlt_project, monkeypatch, capsys, caplog):
    key = "sk_test_" + "x" * 24 + "MARK"
    assert connect_with_key(fresh_emulator, key, monkeypatch=monkeypatch) == EXIT_REAUTHENTICATE
    shown = assert_never_shown(key, capsys, caplog)
    assert "invalid or was revoked" in shown and "`stripe-pipeline connect`" in shown
    assert len(shown.strip().splitlines()) == 1
    assert not (dlt_project / ".dlt" / "secrets.toml").exists()


def test_expired_key_says_expired(fresh_emulator, dlt_project, monkeypatch, capsys, caplog):
    key = fresh_emulator.add_key(kind="secret")
    fresh_emulator.expire_key(key)
    assert connect_with_key(fresh_emulator, key, monkeypatch=monkeypatch) == EXIT_REAUTHENTICATE
    assert "expired" in assert_never_shown(key, capsys, caplog)


def test_print_env_writes_nothing(fresh_emulator, dlt_project, monkeypatch, capsys):
    key = fresh_emulator.add_key(kind="secret")
    assert connect_with_key(fresh_emulator, key, "--print-env", monkeypatch=monkeypatch) == EXIT_OK
    out, err = capsys.readouterr()
    assert f"export SOURCES__STRIPE__CREDENTIALS__API_KEY={key}" in out.splitlines()
    assert "Connection successful!" in err and key not in err
    assert not (dlt_project / ".dlt" / "secrets.toml").exists()
    # the endpoints it was checked against win over any stored in config.toml (dlt reads env first)
    assert f"export SOURCES__STRIPE__API_BASE={fresh_emulator.api_base}" in out.splitlines()


def test_key_from_env_for_unattended_use(fresh_emulator, dlt_project, monkeypatch, capsys, caplog):
    key = fresh_emulator.add_key(kind="secret")
    monkeypatch.setenv("STRIPE_API_KEY", key)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli("connect", "--api-base", fresh_emulator.api_base) == EXIT_OK
    assert_never_shown(key, capsys, caplog)
    assert stored(dlt_project)["api_key"] == key


def test_no_key_at_all_is_bad_input(dlt_project, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli("connect", "--api-base", "http://127.0.0.1:9") == EXIT_BAD_INPUT
    assert "--api-key-stdin" in capsys.readouterr().err


def test_connected_account_with_platform_key(fresh_emulator, dlt_project, monkeypatch, capsys, caplog):
    account = fresh_emulator.connected_account_ids[0]
    key = fresh_emulator.add_key(kind="secret")
    assert connect_with_key(fresh_emulator, key, "--account", account, monkeypatch=monkeypatch) == EXIT_OK
    assert account in assert_never_shown(key, capsys, caplog)
    assert stored(dlt_project) == {"api_key": key, "stripe_account": account}


def test_connect_and_run_agree_when_the_key_cannot_reach_the_account(fresh_emulator, dlt_project, monkeypatch,
                                                                     capsys, caplog):
    # one connection check for both: `connect` said re-authenticate (3) while `run` started
    # extracting and failed on its first list with "permission missing" (4)
    from stripe_source.cli.commands import main

    unknown, key = "acct_1NotConnectedHere", fresh_emulator.api_key
    assert connect_with_key(fresh_emulator, key, "--account", unknown, monkeypatch=monkeypatch) == EXIT_REAUTHENTICATE
    said_by_connect = assert_never_shown(key, capsys, caplog).strip()
    monkeypatch.setenv("SOURCES__STRIPE__CREDENTIALS__API_KEY", key)
    monkeypatch.setenv("SOURCES__STRIPE__CREDENTIALS__STRIPE_ACCOUNT", unknown)
    fresh_emulator.reset_stats()
    db = dlt_project / "unreachable.duckdb"
    assert main(["run", "--api-base", fresh_emulator.api_base, "--duckdb-path", str(db)]) == EXIT_REAUTHENTICATE
    said_by_run = assert_never_shown(key, capsys, caplog).strip()
    assert said_by_run == said_by_connect  # the same one line
    assert f"for account {unknown}" in said_by_run and "not connected, or access was revoked" in said_by_run
    assert fresh_emulator.stats()["requests_total"] == 1 and not db.exists()  # stopped before extracting


# --- connect --check


def test_check_revalidates_what_is_stored(fresh_emulator, dlt_project, monkeypatch, capsys, caplog):
    assert cli("connect", "--check", "--api-base", fresh_emulator.api_base) == EXIT_BAD_INPUT  # nothing stored
    key = fresh_emulator.add_key(kind="secret")
    assert connect_with_key(fresh_emulator, key, monkeypatch=monkeypatch) == EXIT_OK
    capsys.readouterr()
    assert cli("connect", "--check", "--api-base", fresh_emulator.api_base) == EXIT_OK
    assert "Connection successful!" in capsys.readouterr().out
    fresh_emulator.revoke_key(key)
    assert cli("connect", "--check", "--api-base", fresh_emulator.api_base) == EXIT_REAUTHENTICATE
    shown = assert_never_shown(key, capsys, caplog)
    assert "re-authenticate with `stripe-pipeline connect`" in shown


# --- secrets.toml


def test_secrets_file_is_merged_and_private(dlt_project):
    path = dlt_project / ".dlt" / "secrets.toml"
    path.write_text(
        "# my project secrets\n"
        "[destination.duckdb.credentials]\n"
        'database = "x.duckdb"  # keep me\n\n'
        "[sources.stripe]\n"
        'api_base = "http://localhost:1"\n\n'
        "[sources.stripe.credentials]\n"
        'api_key = "sk_test_old"\n'
        'refresh_token = "rt_stale"\n'
    )
    path.chmod(0o644)
    old_umask = os.umask(0)  # even a permissive umask must not open the file up
    try:
        save_credentials(StripeCredentials(api_key="rk_test_new", stripe_account="acct_1"))
    finally:
        os.umask(old_umask)
    text = path.read_text()
    assert "# my project secrets" in text and "# keep me" in text
    assert 'api_base = "http://localhost:1"' in text
    assert stored(dlt_project) == {"api_key": "rk_test_new", "stripe_account": "acct_1"}  # stale token dropped
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]

    assert remove_credentials()
    assert "credentials" not in tomlkit.parse(path.read_text())["sources"]["stripe"]
    assert "# keep me" in path.read_text()
    assert not remove_credentials()


def test_new_secrets_file_is_created_private(dlt_project):
    path = save_credentials(StripeCredentials(api_key="sk_test_abc"))
    assert path == dlt_project / ".dlt" / "secrets.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- Connect OAuth


def oauth_connect(emu, monkeypatch, *extra: str) -> int:
    monkeypatch.setenv("STRIPE_API_KEY", emu.api_key)  # the platform key, read like any key
    monkeypatch.setattr(connect_cli.webbrowser, "open", follow)
    return cli(
        "connect", "--oauth", "--client-id", emu.client_id, "--timeout", "20", "--redirect-port", "0",
        "--api-base", emu.api_base, "--connect-base", emu.connect_base, *extra,
    )  # fmt: skip


def test_oauth_flow_end_to_end(fresh_emulator, dlt_project, monkeypatch, capsys, caplog):
    assert oauth_connect(fresh_emulator, monkeypatch) == EXIT_OK
    creds = stored(dlt_project)
    assert set(creds) == {"api_key", "stripe_account", "refresh_token", "client_secret", "client_id", "scope"}
    assert "expires_at" not in creds  # Connect OAuth's access tokens do not expire
    assert creds["client_id"] == fresh_emulator.client_id
    shown = out = assert_never_shown(creds["api_key"], capsys, caplog)
    for secret in (creds["refresh_token"], fresh_emulator.api_key):
        assert secret not in out and secret not in caplog.text
    assert "Connection successful!" in shown and "Key type: oauth" in shown
    assert creds["stripe_account"] in shown
    assert "/oauth/authorize?" in shown  # the URL is always printed, for machines without a browser


def test_oauth_library_flow_returns_the_connected_account(fresh_emulator):
    creds = run_oauth_flow(
        fresh_emulator.client_id,
        fresh_emulator.api_key,
        connect_base=fresh_emulator.connect_base,
        open_browser=follow,
        announce=lambda url: None,
        timeout=20,
    )
    assert creds.stripe_account and creds.stripe_account.startswith("acct_")
    assert creds.refresh_token and str(creds.client_secret) == fresh_emulator.api_key
    report = validate(creds, fresh_emulator.api_base, connect_base=fresh_emulator.connect_base)
    assert report.account_id == creds.stripe_account and report.key_type == "oauth"


def _authorization_code(emu, state: str = "s1") -> str:
    with CallbackServer() as server:
        follow(authorize_url(emu.client_id, server.redirect_uri, state, connect_base=emu.connect_base))
        return server.wait(state, timeout=20)


def test_denied_consent_stores_nothing(fresh_emulator, dlt_project, monkeypatch, capsys, caplog):
    fresh_emulator.oauth_consent = "deny"  # the user clicks "Deny" on Stripe's consent page
    assert oauth_connect(fresh_emulator, monkeypatch) == EXIT_REAUTHENTICATE
    shown = assert_never_shown(fresh_emulator.api_key, capsys, caplog)
    assert "Access was denied on Stripe's consent page" in shown
    assert "`stripe-pipeline connect --oauth --client-id ca_...`" in shown
    assert not (dlt_project / ".dlt" / "secrets.toml").exists()


def test_reused_code_is_refused(fresh_emulator):
    code = _authorization_code(fresh_emulator)
    first = exchange_code(code, fresh_emulator.api_key, connect_base=fresh_emulator.connect_base)
    with pytest.raises(OAuthFailed, match="invalid_grant"):
        exchange_code(code, fresh_emulator.api_key, connect_base=fresh_emulator.connect_base)
    with pytest.raises(ReauthenticationRequired):  # as on Stripe, replaying a code revokes its tokens
        validate(StripeCredentials(api_key=first.api_key), fresh_emulator.api_base)


def test_a_forged_state_does_not_cancel_the_users_own_sign_in(fresh_emulator):
    # anyone can make the browser open the callback URL: a wrong state is answered and ignored
    emu = fresh_emulator
    with CallbackServer() as server:
        def forger_then_user() -> None:
            forged = requests.get(server.redirect_uri + "?code=ac_evil&state=forged", timeout=20)
            missing = requests.get(server.redirect_uri + "?code=ac_evil", timeout=20)
            answers.extend([forged, missing])
            requests.get(authorize_url(emu.client_id, server.redirect_uri, "expected", connect_base=emu.connect_base),
                         timeout=20)

        answers: list[requests.Response] = []
        clicks = threading.Thread(target=forger_then_user, daemon=True)
        clicks.start()
        code = server.wait("expected", timeout=30)
        clicks.join(timeout=20)
    assert code != "ac_evil" and code.startswith("ac_")
    assert [a.status_code for a in answers] == [400, 400]
    assert "not from the sign-in the terminal is waiting for" in answers[0].text
    assert server.ignored == 2


def test_only_forged_redirects_time_out_and_say_so():
    with CallbackServer() as server:
        follow(server.redirect_uri + "?code=ac_123&state=forged")
        with pytest.raises(OAuthFailed, match=r"within 2 s \(1 redirect\(s\) with a wrong or missing state were "
                                              r"ignored: possible forgery\)"):
            server.wait("expected", timeout=2)


def test_callback_server_is_loopback_only_and_answers_once():
    server = CallbackServer()
    assert server.redirect_uri.startswith("http://127.0.0.1:")
    follow(server.redirect_uri + "?code=ac_1&state=s")
    assert server.wait("s", timeout=20) == "ac_1"
    with pytest.raises(requests.ConnectionError):
        requests.get(server.redirect_uri + "?code=ac_2&state=s", timeout=2)


def test_callback_server_ignores_stray_requests_and_forged_states():
    import socket

    with CallbackServer() as server:
        host, port = server.redirect_uri.split("/")[2].split(":")
        idle = socket.create_connection((host, int(port)))  # a browser's preconnect: sends nothing
        base = server.redirect_uri.rsplit("/stripe/callback", 1)[0]
        answers: list[requests.Response] = []

        def browser() -> None:
            # answered while the preconnect is still open (a server taking one connection at a time
            # would hold them until the preconnect times out, 10 s)
            answers.append(requests.get(base + "/favicon.ico", timeout=5))
            answers.append(requests.get(server.redirect_uri + "?code=ac_1&state=f\u00f6rged", timeout=5))
            answers.append(requests.get(server.redirect_uri + "?code=ac_2&state=expected", timeout=5))

        clicks = threading.Thread(target=browser, daemon=True)
        clicks.start()
        assert server.wait("expected", timeout=30) == "ac_2"
        clicks.join(timeout=20)
        idle.close()
    assert [a.status_code for a in answers] == [404, 400, 200]


def test_a_refreshed_token_that_is_refused_too_asks_to_reauthenticate(fresh_emulator):
    # one refresh per request: a token refused again must not loop (e.g. tokens from another server)
    refreshes: list[int] = []

    def refresh(credentials: StripeCredentials) -> StripeCredentials:
        refreshes.append(1)
        assert len(refreshes) <= 3  # a regression fails here instead of looping forever
        return credentials

    creds = StripeCredentials(api_key="sk_test_neverissued000000", refresh_token="rt_x", client_secret="sk_test_p")
    api = StripeApi(creds, fresh_emulator.api_base, refresh=refresh)
    with pytest.raises(ReauthenticationRequired):
        api.get("/v1/customers")
    assert refreshes == [1]


def test_disconnect_removes_the_credentials_even_when_stripe_cannot_deauthorize(
    fresh_emulator, dlt_project, monkeypatch, capsys, caplog
):
    assert oauth_connect(fresh_emulator, monkeypatch) == EXIT_OK
    creds = stored(dlt_project)
    capsys.readouterr()
    assert cli("disconnect", "--connect-base", "http://127.0.0.1:9") == 5  # Stripe unreachable
    shown = assert_never_shown(creds["api_key"], capsys, caplog)
    assert "revoke it in the Stripe Dashboard" in shown and stored(dlt_project) == {}


def test_a_failure_is_the_same_exit_code_with_debug_output(fresh_emulator, dlt_project, monkeypatch, capsys):
    from stripe_source.cli.commands import main

    monkeypatch.setenv("STRIPE_PIPELINE_DEBUG", "1")
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_neverissued000000")
    args = ["run", "--api-base", fresh_emulator.api_base, "--duckdb-path", str(dlt_project / "d.duckdb")]
    assert main(args) == EXIT_REAUTHENTICATE
    assert "Traceback" in capsys.readouterr().err


def test_callback_server_times_out_clearly():
    with pytest.raises(OAuthFailed, match=r"No answer from Stripe's consent page within 0 s"):
        CallbackServer().wait("s", timeout=0.2)


def test_oauth_token_refresh_when_access_token_expired(fresh_emulator, dlt_project, monkeypatch, capsys, caplog):
    assert oauth_connect(fresh_emulator, monkeypatch) == EXIT_OK
    before = stored(dlt_project)
    fresh_emulator.expire_key(before["api_key"])

    creds = load_credentials()
    api = StripeApi(creds, fresh_emulator.api_base, connect_base=fresh_emulator.connect_base,
                    refresh=refresher_for(creds, fresh_emulator.api_base, fresh_emulator.connect_base))
    assert api.get("/v1/charges", {"limit": 1})["object"] == "list"
    after = stored(dlt_project)
    assert after["api_key"] == str(creds.api_key) != before["api_key"]
    assert after["refresh_token"] == str(creds.refresh_token)
    assert stat.S_IMODE((dlt_project / ".dlt" / "secrets.toml").stat().st_mode) == 0o600
    for secret in (before["api_key"], after["api_key"], before["refresh_token"], after["refresh_token"]):
        assert_never_shown(secret, capsys, caplog)


def test_refresh_with_revoked_refresh_token_asks_to_reauthenticate(fresh_emulator):
    creds = StripeCredentials(
        api_key="sk_test_gone", stripe_account="acct_1", refresh_token="rt_unknown",
        client_secret=fresh_emulator.api_key, client_id=fresh_emulator.client_id,
    )  # fmt: skip
    with pytest.raises(ReauthenticationRequired, match="refresh token") as info:
        refresh_access_token(creds, connect_base=fresh_emulator.connect_base)
    assert "rt_unknown" not in str(info.value) and fresh_emulator.api_key not in str(info.value)


def test_disconnect_deauthorizes_and_removes(fresh_emulator, dlt_project, monkeypatch, capsys, caplog):
    assert oauth_connect(fresh_emulator, monkeypatch) == EXIT_OK
    creds = stored(dlt_project)
    capsys.readouterr()
    assert cli("disconnect", "--connect-base", fresh_emulator.connect_base) == EXIT_OK
    shown = assert_never_shown(creds["api_key"], capsys, caplog)
    assert f"Deauthorized {creds['stripe_account']}" in shown
    assert stored(dlt_project) == {}
    # the old token is dead: validating it asks to re-authenticate
    with pytest.raises(ReauthenticationRequired):
        validate(
            StripeCredentials(api_key=creds["api_key"], stripe_account=creds["stripe_account"]),
            fresh_emulator.api_base,
        )
    monkeypatch.delenv("STRIPE_API_KEY")
    assert cli("disconnect") == EXIT_OK
    assert "nothing to disconnect" in capsys.readouterr().out


# --- connect, then run with no flag; re-authentication after a revoke between runs


def test_run_uses_what_connect_stored_and_asks_to_reauthenticate_after_revoke(
    fresh_emulator, dlt_project, monkeypatch, capsys, caplog
):
    from stripe_source.cli.commands import main

    marker = fresh_emulator.add_key("sk_test_MARKERconnect" + "Zq81Lx0Pw4", kind="secret")
    monkeypatch.setattr(sys, "stdin", io.StringIO(marker + "\n"))
    assert main(["connect", "--api-key-stdin", "--api-base", fresh_emulator.api_base]) == EXIT_OK
    db = dlt_project / "connected.duckdb"
    # no --api-base: `run` talks to the server `connect` stored in .dlt/config.toml
    assert main(["run", "--resources", "customers", "--duckdb-path", str(db)]) == EXIT_OK  # no key flag

    fresh_emulator.revoke_key(marker)
    capsys.readouterr()
    assert main(["run", "--resources", "customers", "--duckdb-path", str(db)]) == EXIT_REAUTHENTICATE
    _, err = capsys.readouterr()
    assert "`stripe-pipeline connect`" in err and len(err.strip().splitlines()) == 1
    assert main(["connect", "--check"]) == EXIT_REAUTHENTICATE
    assert_never_shown(marker, capsys, caplog)

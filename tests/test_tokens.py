"""Token lifetime and rotation (`connection/tokens.py`): crashes around a rotation, stores, races.

A Stripe App's refresh token is good for one refresh: whatever happens around a rotation, the
connection keeps working or the next run says "re-authenticate" (exit 3), never fails silently.
"""

from __future__ import annotations

import ast
import contextlib
import shlex
import stat
from pathlib import Path

import pytest

from stripe_source.cli.commands import main
from stripe_source.connection import (
    TokenRefresher,
    TokenStore,
    load_credentials,
    refresh_access_token,
    refresher_for,
    token_store_for,
)
from stripe_source.connection.tokens import REFRESH_MARGIN, is_due, token_fields
from stripe_source.credentials import StripeCredentials
from stripe_source.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_REAUTHENTICATE
from tests.app_connection import connect_app, stored, token_posts
from tests.helpers import ids

HOUR = 3600


class Killed(BaseException):
    """The process dies here (SIGKILL, power loss): nothing after this line runs."""


def refresh_stored(emu) -> StripeCredentials:
    return refresh_access_token(load_credentials(), api_base=emu.api_base, connect_base=emu.connect_base)


# --- lifetimes


def test_lifetimes_count_from_stripes_clock_and_default_to_stripes_documented_ones():
    app = {"access_token": "sk_test_a", "refresh_token": "rt_b", "scope": "stripe_apps"}
    assert token_fields(app, 1000) == {"api_key": "sk_test_a", "refresh_token": "rt_b", "expires_at": 1000 + HOUR,
                                       "refresh_expires_at": 1000 + 365 * 86400}
    stated = token_fields({**app, "expires_in": 1800, "refresh_token_expires_in": 86400}, 1000)
    assert (stated["expires_at"], stated["refresh_expires_at"]) == (2800, 87400)
    connect = token_fields({"access_token": "sk_test_a", "refresh_token": "rt_b", "scope": "read_only"}, 1000)
    assert connect["expires_at"] is None  # Connect OAuth's access tokens do not expire


def test_a_token_is_due_within_the_margin():
    creds = StripeCredentials(api_key="sk_test_a", expires_at=10_000)
    assert not is_due(creds, 10_000 - REFRESH_MARGIN - 1)
    assert is_due(creds, 10_000 - REFRESH_MARGIN) and is_due(creds, 20_000)
    assert not is_due(StripeCredentials(api_key="sk_test_a"), 10**10)  # no expiry: never due


# --- crashes around a rotation


def test_a_crash_between_rotation_and_store_asks_to_reauthenticate_naming_the_account(
    fresh_emulator, dlt_project, monkeypatch, capsys
):
    emu = fresh_emulator
    account = emu.connected_account_ids[0]
    assert connect_app(emu, monkeypatch) == EXIT_OK
    emu.advance(seconds=HOUR + 60)

    def killed(self: TokenStore, credentials: StripeCredentials) -> None:
        raise Killed  # Stripe has rotated the refresh token; the new one never reaches the disk

    with monkeypatch.context() as crash:
        crash.setattr(TokenStore, "write", killed)
        with pytest.raises(Killed):
            refresh_stored(emu)
    capsys.readouterr()
    db = dlt_project / "after_crash.duckdb"
    assert main(["run", "--duckdb-path", str(db)]) == EXIT_REAUTHENTICATE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"for account {account}" in err and "already used" in err
    assert "re-authenticate with `stripe-pipeline connect`" in err
    assert not db.exists()  # stopped before it loaded anything


def test_a_crash_after_the_store_loses_nothing(fresh_emulator, dlt_project, monkeypatch):
    emu = fresh_emulator
    assert connect_app(emu, monkeypatch) == EXIT_OK
    before = stored(dlt_project)
    emu.advance(seconds=HOUR + 60)
    renewed = refresh_stored(emu)  # stored; the process dies before it sends the new token anywhere
    assert stored(dlt_project)["refresh_token"] == renewed.refresh_token != before["refresh_token"]
    db = dlt_project / "after_store.duckdb"
    assert main(["run", "--duckdb-path", str(db), "--resources", "customers"]) == EXIT_OK
    assert ids(db, "customers")


# --- two processes, one stored refresh token


def test_a_refresh_refused_because_another_machine_rotated_takes_the_stored_token(
    fresh_emulator, dlt_project, monkeypatch
):
    # a store on a filesystem whose locks do not reach the other process: both refresh the same token
    emu = fresh_emulator
    assert connect_app(emu, monkeypatch) == EXIT_OK
    emu.advance(seconds=HOUR + 60)
    monkeypatch.setattr(TokenStore, "lock", lambda self: contextlib.nullcontext())
    first, second = load_credentials(), load_credentials()
    other = refresher_for(first, emu.api_base)
    mine = refresher_for(second, emu.api_base)
    assert isinstance(other, TokenRefresher) and isinstance(mine, TokenRefresher)
    post = mine._post

    def the_other_rotates_first(credentials: StripeCredentials):
        other(first)  # rotates and stores while this one is about to send the same refresh token
        return post(credentials)

    monkeypatch.setattr(mine, "_post", the_other_rotates_first)
    posts = token_posts(emu)
    mine(second)  # Stripe says invalid_grant; the store has the other's new tokens: take them
    assert token_posts(emu) == posts + 2
    assert second.api_key == first.api_key and second.refresh_token == first.refresh_token
    assert stored(dlt_project)["refresh_token"] == str(first.refresh_token)
    assert main(["connect", "--check"]) == EXIT_OK


# --- credentials from environment variables


def exported(out: str) -> dict[str, str]:
    pairs = [shlex.split(line[len("export "):])[0].split("=", 1) for line in out.splitlines()
             if line.startswith("export ")]
    return dict(pairs)  # type: ignore[arg-type]


def test_env_credentials_rotate_into_a_token_store_and_refuse_to_rotate_without_one(
    fresh_emulator, dlt_project, monkeypatch, capsys
):
    emu = fresh_emulator
    account = emu.connected_account_ids[0]
    assert connect_app(emu, monkeypatch, "--print-env") == EXIT_OK
    out, err = capsys.readouterr()
    assert "TOKEN_STORE" in err  # --print-env says where rotations must go
    for name, value in exported(out).items():
        monkeypatch.setenv(name, value)
    assert not (dlt_project / ".dlt" / "secrets.toml").exists()
    emu.advance(seconds=HOUR + 60)

    posts = token_posts(emu)
    db = dlt_project / "env.duckdb"
    run = ["run", "--duckdb-path", str(db), "--resources", "customers"]
    assert main(run) == EXIT_BAD_INPUT  # rotating now would throw away the only refresh token
    assert "SOURCES__STRIPE__CREDENTIALS__TOKEN_STORE" in capsys.readouterr().err
    assert token_posts(emu) == posts and not db.exists()

    store = dlt_project.parent / "state" / "stripe_tokens.toml"  # e.g. an orchestrator's persistent volume
    monkeypatch.setenv("SOURCES__STRIPE__CREDENTIALS__TOKEN_STORE", str(store))
    assert main(run) == EXIT_OK
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    first = stored(dlt_project, store)
    assert first["stripe_account"] == account and "client_secret" not in first  # tokens only, not the app's key
    emu.advance(seconds=HOUR + 60)
    assert main(run) == EXIT_OK  # the environment's refresh token is spent: the store's chain continues
    assert token_posts(emu) == posts + 2 and stored(dlt_project, store)["refresh_token"] != first["refresh_token"]

    # connecting again gives the environment a new refresh token: the store's older chain is ignored
    assert connect_app(emu, monkeypatch, "--print-env") == EXIT_OK
    for name, value in exported(capsys.readouterr().out).items():
        monkeypatch.setenv(name, value)
    emu.advance(seconds=HOUR + 60)
    assert main(run) == EXIT_OK


def test_library_use_renews_into_the_token_store_given_in_code(fresh_emulator, dlt_project, monkeypatch, capsys):
    import dlt

    from stripe_source import stripe_source

    emu = fresh_emulator
    assert connect_app(emu, monkeypatch, "--print-env") == EXIT_OK
    env = exported(capsys.readouterr().out)
    prefix = "SOURCES__STRIPE__CREDENTIALS__"
    store = dlt_project / "tokens.toml"
    creds = StripeCredentials(**{name[len(prefix):].lower(): value for name, value in env.items()
                                 if name.startswith(prefix)}, token_store=str(store))  # as an orchestrator's asset
    emu.advance(seconds=HOUR + 60)
    pipeline = dlt.pipeline("stripe_asset", destination=dlt.destinations.duckdb(str(dlt_project / "asset.duckdb")),
                            dataset_name="stripe")
    pipeline.run(stripe_source(credentials=creds, api_base=emu.api_base, resources="customers"))
    first = stored(dlt_project, store)["refresh_token"]
    assert first != env[prefix + "REFRESH_TOKEN"] and ids(dlt_project / "asset.duckdb", "customers")
    emu.advance(seconds=HOUR + 60)  # the next materialization: same credentials in code, the store's chain
    pipeline.run(stripe_source(credentials=creds, api_base=emu.api_base, resources="customers"))
    assert stored(dlt_project, store)["refresh_token"] != first


def test_the_token_store_is_where_the_credentials_came_from(dlt_project):
    creds = StripeCredentials(api_key="sk_test_a", refresh_token="rt_1", client_id="ca_1", stripe_account="acct_1")
    assert token_store_for(creds) is None  # nothing stored, no token_store: nowhere
    (dlt_project / ".dlt" / "secrets.toml").write_text(
        '[sources.stripe.credentials]\napi_key = "sk_test_a"\nrefresh_token = "rt_0"\nclient_id = "ca_1"\n'
        'stripe_account = "acct_1"\n')
    found = token_store_for(creds)
    assert found is not None and found.path == dlt_project / ".dlt" / "secrets.toml" and found.origin is None
    other = StripeCredentials(api_key="sk_test_b", refresh_token="rt_9", client_id="ca_1", stripe_account="acct_2")
    assert token_store_for(other) is None  # another connection's secrets are not this one's store
    creds.token_store = str(dlt_project / "t.toml")
    assert token_store_for(creds) == TokenStore(Path(creds.token_store), origin=token_store_for(creds).origin)


# --- layering


def test_the_client_does_not_import_the_connection_step():
    source = Path(__file__).resolve().parents[1] / "sources" / "stripe_source" / "client.py"
    imported = {node.module for node in ast.walk(ast.parse(source.read_text()))
                if isinstance(node, ast.ImportFrom) and node.module}
    assert not [name for name in imported if "connection" in name]


def test_user_agent_suffix(monkeypatch, fresh_emulator, dlt_project, capsys):
    from stripe_source.authorization import Authorization
    from stripe_source.client import USER_AGENT, StripeApi

    api = StripeApi(StripeCredentials(api_key=fresh_emulator.api_key), fresh_emulator.api_base,
                    user_agent_suffix="acme-analytics/2.1")
    assert api.auth.headers["User-Agent"] == f"{USER_AGENT} acme-analytics/2.1"
    monkeypatch.setenv("SOURCES__STRIPE__USER_AGENT_SUFFIX", "from-config/1")
    api = StripeApi(StripeCredentials(api_key="sk_test_x"), fresh_emulator.api_base)
    assert api.auth.headers["User-Agent"].endswith(" from-config/1")
    monkeypatch.delenv("SOURCES__STRIPE__USER_AGENT_SUFFIX")
    fresh_emulator.reset_stats()
    monkeypatch.setenv("STRIPE_API_KEY", fresh_emulator.api_key)
    args = ["run", "--api-base", fresh_emulator.api_base, "--duckdb-path", str(dlt_project / "ua.duckdb")]
    assert main([*args, "--user-agent-suffix", "bad\nline"]) == EXIT_BAD_INPUT
    assert "user_agent_suffix" in capsys.readouterr().err and fresh_emulator.stats()["requests_total"] == 0
    seen: list[str] = []
    original = Authorization.use

    def spy(self: Authorization, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        seen.append(self.headers["User-Agent"])

    monkeypatch.setattr(Authorization, "use", spy)
    assert main([*args, "--resources", "coupons", "--user-agent-suffix", "acme/3"]) == EXIT_OK
    assert seen and all(agent.endswith(" acme/3") for agent in seen)

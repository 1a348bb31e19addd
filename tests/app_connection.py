"""Connecting a Stripe App against the emulator, as a user would: `connect --app`, the browser follows the link."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests
import tomlkit

from stripe_source.cli import connect as connect_cli
from stripe_source.cli.commands import main


def follow(url: str) -> None:
    """The user's browser: open the install link and follow Stripe's redirect to the callback."""
    threading.Thread(target=requests.get, args=(url,), kwargs={"timeout": 10}, daemon=True).start()


def connect_app(emu, monkeypatch: pytest.MonkeyPatch, *extra: str, account: str | None = None) -> int:
    """`stripe-pipeline connect --app` with the app's key from the environment; `account`: the account
    that installs the app (default: the emulator's first connected account)."""
    monkeypatch.setenv("STRIPE_API_KEY", emu.api_key)  # the app's secret key: the platform owns the app
    opened = follow
    if account:
        def opened(url: str) -> None:
            follow(url + "&emulator_account=" + account)
    monkeypatch.setattr(connect_cli.webbrowser, "open", opened)
    code = main([
        "connect", "--app", "--client-id", emu.apps.client_id, "--timeout", "20", "--redirect-port", "0",
        "--api-base", emu.api_base, "--marketplace-base", emu.api_base, *extra,
    ])  # fmt: skip
    monkeypatch.delenv("STRIPE_API_KEY")  # runs read what `connect` stored, not the app's key
    return code


def stored(project: Path, path: Path | None = None) -> dict:
    doc = tomlkit.parse((path or project / ".dlt" / "secrets.toml").read_text()).unwrap()
    return doc.get("sources", {}).get("stripe", {}).get("credentials", {})


def token_posts(emu) -> int:
    """Calls of Stripe's token endpoint (code exchanges and refreshes) since the emulator started."""
    return emu.stats()["requests"].get("POST /v1/oauth/token", 0)

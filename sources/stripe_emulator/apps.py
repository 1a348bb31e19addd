"""Stripe Apps OAuth, emulated: one app owned by the platform account, installed through its install link.

    GET  /oauth/v2/authorize?client_id=ca_...&redirect_uri=...&state=...   the install link (marketplace)
    POST /v1/oauth/token               grant_type=authorization_code | refresh_token (the app's secret key)
    GET  /v1/apps/installs?app=app_... the Install API, with the app's key and `Stripe-Account`
    POST /v1/apps/installs/{id}/uninstall

As Stripe documents them: the redirect goes only to an allowed redirect URI (the manifest's
`allowed_redirect_uris`) with `code` and `state`; a code is single use and valid 5 minutes; the
answer's `scope` is `stripe_apps`; access tokens expire after an hour and refresh tokens after a
year, on the emulator's clock; every refresh returns a new refresh token and the old one is refused
from then on; failures are OAuth bodies (`{"error": "invalid_grant", ...}`). Uninstalling (through
the Install API, or `uninstall_from_dashboard` for the account owner's click) revokes every token.
Where Stripe's docs say nothing, the stricter reading: a replayed code revokes what it issued, and
a refresh revokes the access token it replaces (as Connect OAuth documents for its refresh).
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlparse

import orjson

if TYPE_CHECKING:
    from . import Emulator

CODE_SECONDS = 300
ACCESS_SECONDS = 3600
REFRESH_SECONDS = 365 * 86400
SCOPE = "stripe_apps"


class _ExpiringKey(dict):
    """An app access token's entry in `emu.keys`: its status reads "expired" once the emulator's clock
    passes its expiry, so the server's key check (`status`) needs to know nothing about apps."""

    def __init__(self, info: dict, clock: Callable[[], int], expires_at: int) -> None:
        super().__init__(info)
        self.clock, self.expires_at = clock, expires_at

    def __getitem__(self, name: str) -> Any:
        value = super().__getitem__(name)
        if name == "status" and value == "active" and self.clock() >= self.expires_at:
            return "expired"
        return value

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default


class StripeApps:
    """The app's installs, codes and tokens; `answer` serves the paths above for the HTTP handler."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        rng = random.Random(emu.seed * 7919)
        self.client_id = "ca_" + "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", k=24))
        self.app_id = "app_" + "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", k=24))
        # None: any loopback redirect (tests' callback servers use random ports); a list: only those
        self.allowed_redirect_uris: list[str] | None = None
        self.consent = "approve"  # or "deny": what the user clicks on the install page
        self.codes: dict[str, dict] = {}
        self.refresh_tokens: dict[str, dict] = {}
        self.installs: dict[str, dict] = {}  # account -> its install of the app
        self.lock = threading.Lock()

    # --- routing
    def serves(self, method: str, path: str) -> bool:
        return (method, path) in (("GET", "/oauth/v2/authorize"), ("POST", "/v1/oauth/token"),
                                  ("GET", "/v1/apps/installs")) or (
            method == "POST" and path.startswith("/v1/apps/installs/") and path.endswith("/uninstall"))

    def answer(self, method: str, url: Any, body: bytes, headers: Any) -> tuple[int, bytes, dict[str, str]]:
        """(status, JSON body, headers) for a request `serves` accepts."""
        path = urlparse(url).path if isinstance(url, str) else url.path
        query = dict(parse_qsl(urlparse(url).query if isinstance(url, str) else url.query))
        if path == "/oauth/v2/authorize":
            return self.authorize(query)
        if path == "/v1/oauth/token":
            auth = headers.get("Authorization", "")
            form = dict(parse_qsl(body.decode()))
            secret = form.get("client_secret") or (auth[7:].strip() if auth.startswith("Bearer ") else None)
            status, payload = self.token(form, secret)
            return status, orjson.dumps(payload), {}
        store, key = self.emu.api.authenticate(headers)  # the API's own key check (raises its errors)
        if key["kind"] != "secret" or key["account"] != self.emu.account_id:
            return _api_error(403, "Only the app's developer can use the Install API with its secret key.")
        account = headers.get("Stripe-Account")
        if path == "/v1/apps/installs":
            return self.list_installs(query, account)
        return self.uninstall(path.split("/")[4], account)

    # --- the install link
    def authorize(self, params: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        if params.get("client_id") != self.client_id:
            return _oauth_error(400, "invalid_client", f"No such application: {params.get('client_id')}")
        redirect = params.get("redirect_uri") or (self.allowed_redirect_uris or [""])[0]
        if not self._allowed(redirect):
            # Stripe shows an error page instead of redirecting to a URI the manifest does not list
            return _oauth_error(400, "invalid_redirect_uri",
                                f"Invalid redirect URI '{redirect}': add it to allowed_redirect_uris")
        extra = {"state": params["state"]} if "state" in params else {}
        if self.consent == "deny":
            return 302, b"", {"Location": _redirect(redirect, error="access_denied",
                                                    error_description="The user denied your request", **extra)}
        account = params.get("emulator_account") or self.emu.connected_account_ids[0]
        code = "ac_" + secrets.token_urlsafe(18)
        with self.lock:
            self.installs.setdefault(account, self._install(account))
            self.codes[code] = {"account": account, "expires": self.emu.now() + CODE_SECONDS, "used": False,
                                "tokens": []}
        return 302, b"", {"Location": _redirect(redirect, code=code, **extra)}

    def _allowed(self, redirect: str) -> bool:
        if self.allowed_redirect_uris is not None:
            return redirect in self.allowed_redirect_uris
        parts = urlparse(redirect)
        return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")

    def _install(self, account: str) -> dict:
        return {"id": "appinst_test_" + secrets.token_hex(12), "object": "apps.install", "account": account,
                "app": self.app_id, "approval_required": False, "auth_code": None, "channel": "public",
                "content_security_policy_granted": {"connect_src": [], "image_src": []},
                "content_security_policy_pending": {"connect_src": [], "image_src": []},
                "created": self.emu.now(), "created_by": None, "endpoints_granted": [], "endpoints_pending": [],
                "livemode": False, "permissions_granted": ["customer_read", "event_read"], "permissions_pending": [],
                "status": "installed"}

    # --- POST /v1/oauth/token
    def token(self, form: dict[str, str], secret: str | None) -> tuple[int, dict]:
        info = self.emu.keys.get(secret or "")
        if not (info and info["account"] == self.emu.account_id and info["kind"] == "secret"
                and info["status"] == "active"):
            return 401, {"error": "invalid_client", "error_description": "The app's secret key is invalid"}
        grant = form.get("grant_type")
        now = self.emu.now()
        with self.lock:
            if grant == "authorization_code":
                code = self.codes.get(form.get("code", ""))
                if code is None:
                    return 400, _grant_error("Authorization code does not exist")
                if code["used"]:
                    for token in code["tokens"]:
                        self._revoke(token)
                    return 400, _grant_error("This authorization code has already been used. All tokens issued "
                                             "with this code have been revoked.")
                if now > code["expires"]:
                    return 400, _grant_error("This authorization code has expired.")
                code["used"] = True
                payload = self._issue(code["account"])
                code["tokens"] += [payload["access_token"], payload["refresh_token"]]
                return 200, payload
            if grant == "refresh_token":
                refresh = self.refresh_tokens.get(form.get("refresh_token", ""))
                if refresh is None or refresh["revoked"]:
                    return 400, _grant_error("Invalid refresh token")
                if refresh["used"]:
                    return 400, _grant_error("This refresh token has already been used")
                if now >= refresh["expires"]:
                    return 400, _grant_error("This refresh token has expired")
                refresh["used"] = True
                self._revoke(refresh["access_token"])
                return 200, self._issue(refresh["account"])
        return 400, {"error": "unsupported_grant_type", "error_description": f"Unsupported grant type: {grant}"}

    def _issue(self, account: str) -> dict:
        now = self.emu.now()
        access = self.emu.add_key(kind="oauth", account=account)
        self.emu.keys[access] = _ExpiringKey(self.emu.keys[access], self.emu.now, now + ACCESS_SECONDS)
        refresh = "rt_" + secrets.token_urlsafe(32)
        self.refresh_tokens[refresh] = {"account": account, "expires": now + REFRESH_SECONDS, "used": False,
                                        "revoked": False, "access_token": access}
        return {"access_token": access, "refresh_token": refresh, "token_type": "bearer", "scope": SCOPE,
                "livemode": False, "stripe_user_id": account,
                "stripe_publishable_key": "pk_test_" + secrets.token_hex(12)}

    def _revoke(self, token: str) -> None:
        if token in self.refresh_tokens:
            self.refresh_tokens[token]["revoked"] = True
        elif token in self.emu.keys:
            self.emu.revoke_key(token)

    # --- the Install API
    def list_installs(self, params: dict[str, str], account: str | None) -> tuple[int, bytes, dict[str, str]]:
        if params.get("app") not in (None, self.app_id):
            return _api_error(404, f"No such app: '{params['app']}'", code="resource_missing", param="app")
        with self.lock:
            found = [dict(install) for acct, install in self.installs.items() if account in (None, acct)]
        listing = {"object": "list", "data": found, "has_more": False, "url": "/v1/apps/installs"}
        return 200, orjson.dumps(listing), {}

    def uninstall(self, install_id: str, account: str | None) -> tuple[int, bytes, dict[str, str]]:
        with self.lock:
            install = next((i for i in self.installs.values() if i["id"] == install_id), None)
        if install is None or account != install["account"]:
            return _api_error(404, f"No such app install: '{install_id}'", code="resource_missing", param="id")
        self.uninstall_from_dashboard(install["account"])
        return 200, orjson.dumps(dict(install, status="uninstalling")), {}

    def uninstall_from_dashboard(self, account: str) -> None:
        """The account's owner uninstalls the app: every token it was given stops working."""
        with self.lock:
            self.installs.pop(account, None)
            for info in self.refresh_tokens.values():
                if info["account"] == account:
                    info["revoked"] = True
                    self._revoke(info["access_token"])


def _grant_error(description: str) -> dict:
    return {"error": "invalid_grant", "error_description": description}


def _oauth_error(status: int, error: str, description: str) -> tuple[int, bytes, dict[str, str]]:
    return status, orjson.dumps({"error": error, "error_description": description}), {}


def _api_error(status: int, message: str, **fields: str) -> tuple[int, bytes, dict[str, str]]:
    return status, orjson.dumps({"error": {"message": message, "type": "invalid_request_error", **fields}}), {}


def _redirect(uri: str, **params: Any) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode({k: v for k, v in params.items() if v is not None})

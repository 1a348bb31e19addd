"""The connection step: validate a key, authorize with Connect OAuth, store and renew credentials.

Everything here speaks to the user through `errors.py` and never puts a key or token in a message,
a log line or a repr: keys appear masked (`mask()`), tokens not at all.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
import stripe
import tomlkit
from tomlkit.items import Table

from .catalog import CATALOG
from .client import DEFAULT_API_BASE, DEFAULT_CONNECT_BASE, USER_AGENT, StripeApi
from .credentials import StripeCredentials, mask, resolve_credentials
from .errors import CONNECT_COMMAND, EXIT_REAUTHENTICATE, ReauthenticationRequired, StripeSourceError, StripeUnavailable

logger = logging.getLogger(__name__)

SECTION = ("sources", "stripe", "credentials")
ENV_PREFIX = "SOURCES__STRIPE__CREDENTIALS__"
CREDENTIAL_FIELDS = ("api_key", "stripe_account", "refresh_token", "client_secret", "client_id")
SCOPES = ("read_only", "read_write")
CALLBACK_PATH = "/stripe/callback"
DEFAULT_REDIRECT_PORT = 8765  # the CLI's: Stripe redirects only to a redirect URI registered in advance
OAUTH_TIMEOUT = 300.0  # seconds to wait for the browser; Stripe's codes live 5 minutes anyway
HTTP_TIMEOUT = 30.0


class OAuthFailed(StripeSourceError):
    """Connect OAuth did not produce tokens (denied, wrong state, bad code, timeout): nothing stored."""

    exit_code = EXIT_REAUTHENTICATE


# --- validation


@dataclass
class ConnectionReport:
    """What a successful validation learned about the account behind the credentials."""

    account_id: str | None
    name: str | None
    country: str | None
    livemode: bool
    key_type: str  # "secret", "restricted" or "oauth"
    masked_key: str
    readable: dict[str, str] = field(default_factory=dict)  # table -> permission (restricted keys)
    unreadable: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            "Connection successful!",
            f"  Account:  {self.account_id or '(unknown)'}" + (f" ({self.name})" if self.name else ""),
            f"  Country:  {self.country or '(unknown)'}",
            f"  Mode:     {'live' if self.livemode else 'test'}",
            f"  Key type: {self.key_type} ({self.masked_key})",
        ]
        if self.key_type == "restricted":
            out.append("  Can read:    " + (", ".join(self.readable) or "nothing"))
            out.append(
                "  Cannot read: "
                + (", ".join(f"{t} (needs '{p}')" for t, p in self.unreadable.items()) or "nothing")
            )
        return out


def key_type(credentials: StripeCredentials) -> str:
    """OAuth access tokens look like secret keys (sk_); the refresh token tells them apart."""
    return "oauth" if credentials.refresh_token else credentials.key_type


def validate(
    credentials: StripeCredentials | str | None,
    api_base: str = DEFAULT_API_BASE,
    *,
    connect_base: str = DEFAULT_CONNECT_BASE,
    probe_permissions: bool | None = None,
) -> ConnectionReport:
    """Prove the credentials work with one cheap read (GET /v1/account) and describe the account.

    A restricted key may lack `rak_account_read`: its 403 still proves the key is valid (an invalid
    one gets 401). Restricted keys then probe every catalog list (`limit=1`) to say what they can
    read; sub-lists share their parent's permission and are not probed.
    Raises `ReauthenticationRequired` on 401 (after one refresh for OAuth tokens).
    """
    credentials = resolve_credentials(credentials)
    # Few attempts: the user is waiting at a terminal, a dead network should fail in seconds.
    api = StripeApi(credentials, api_base, connect_base=connect_base, max_attempts=3)
    try:
        account: Mapping[str, Any] = {}
        account_readable = True
        try:
            account = api.get("/v1/account")
        except stripe.PermissionError as exc:
            _raise_if_no_account_access(exc, credentials)
            account_readable = False
            account = {"id": _account_in_message(exc)}
        report = ConnectionReport(
            account_id=account.get("id") or credentials.stripe_account,
            name=_account_name(account),
            country=account.get("country"),
            livemode=credentials.livemode,
            key_type=key_type(credentials),
            masked_key=mask(credentials.api_key),
        )
        if probe_permissions is None:
            probe_permissions = credentials.key_type == "restricted"
        if probe_permissions:
            for entry in CATALOG:
                if not entry.path or entry.parent:
                    continue
                if entry.singleton:
                    readable = account_readable and entry.path == "/v1/account"
                else:
                    readable = _can_read(api, entry.path, credentials)
                (report.readable if readable else report.unreadable)[entry.table] = entry.permission
        return report
    finally:
        api.close()


def _can_read(api: StripeApi, path: str, credentials: StripeCredentials) -> bool:
    try:
        api.get(path, {"limit": 1})
    except stripe.PermissionError as exc:
        _raise_if_no_account_access(exc, credentials)
        return False
    except stripe.InvalidRequestError as exc:
        # Not a permission question (an endpoint this account cannot use): say so and move on.
        logger.info("Probe of %s failed with HTTP %s", path, exc.http_status)
        return False
    return True


def _raise_if_no_account_access(exc: stripe.StripeError, credentials: StripeCredentials) -> None:
    """A 403 naming no permission means the key cannot reach the account at all (Stripe-Account)."""
    message = str(exc.user_message or "")
    if "does not have access to account" in message or (
        credentials.key_type != "restricted" and "rak_" not in message
    ):
        raise ReauthenticationRequired(
            "the key has no access to this account: it is not connected, or access was revoked",
            credentials.stripe_account,
        ) from None


def _account_in_message(exc: stripe.StripeError) -> str | None:
    found = re.search(r"acct_[A-Za-z0-9]+", str(exc.user_message or ""))
    return found.group(0) if found else None


def _account_name(account: Mapping[str, Any]) -> str | None:
    profile = account.get("business_profile") or {}
    dashboard = (account.get("settings") or {}).get("dashboard") or {}
    return profile.get("name") or dashboard.get("display_name") or account.get("email")


# --- Connect OAuth


def new_state() -> str:
    return secrets.token_urlsafe(24)


def authorize_url(
    client_id: str,
    redirect_uri: str,
    state: str,
    scope: str = "read_only",
    connect_base: str = DEFAULT_CONNECT_BASE,
) -> str:
    """Stripe's consent page for `client_id` (ca_...); Stripe redirects back with `code` and `state`."""
    if not client_id.startswith("ca_"):
        raise OAuthFailed(
            "The Connect client_id must start with ca_ (Dashboard > Settings > Connect > Onboarding "
            f"options > OAuth): run `{CONNECT_COMMAND} --oauth --client-id ca_...`"
        )
    if scope not in SCOPES:
        raise OAuthFailed(f"OAuth scope must be one of {', '.join(SCOPES)}, got '{scope}'")
    query = {
        "response_type": "code",
        "client_id": client_id,
        "scope": scope,
        "state": state,
        "redirect_uri": redirect_uri,
    }
    return f"{connect_base.rstrip('/')}/oauth/authorize?{urlencode(query)}"


class CallbackServer:
    """The redirect target: loopback only, on `port` (0: a free one), closed after the redirect.

    Stripe redirects only to a `redirect_uri` registered in the platform's Connect settings, so a
    fixed `port` lets the user register `http://127.0.0.1:<port>/stripe/callback` once. Requests
    to other paths (a browser's favicon) or that send nothing (a preconnect) are ignored until the
    redirect comes. So is a redirect with a wrong or missing `state` (answered with an error page):
    anyone can make the browser open the callback URL, and a forged request must not cancel the
    user's own sign-in. `wait()` returns the authorization code of the redirect that carried the
    expected `state`; a denial (`error=access_denied`) or silence until the timeout raises `OAuthFailed`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._params: dict[str, str] | None = None
        self._state: str | None = None
        self.ignored = 0  # redirects with a wrong or missing state
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a connection that sends nothing must not hold the flow forever

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                url = urlsplit(self.path)
                if url.path != CALLBACK_PATH:
                    self._answer(404, "Not the Stripe redirect.")
                    return
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                state_ok = outer._state is not None and secrets.compare_digest(
                    params.get("state", "").encode(), outer._state.encode()
                )
                if not state_ok:
                    outer.ignored += 1
                    self._answer(400, "This link is not from the sign-in the terminal is waiting for (wrong or "
                                      "missing state). Return to the terminal and use the link it shows.")
                    return
                outer._params = params
                if params.get("code"):
                    self._answer(200, "Stripe connected. You can close this tab and return to the terminal.")
                else:
                    self._answer(400, "Stripe did not connect. Return to the terminal for details.")

            def _answer(self, status: int, text: str) -> None:
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the request line carries the authorization code

        try:
            self._server = HTTPServer((host, port), Handler)
        except OSError as exc:
            raise OAuthFailed(
                f"Cannot listen for Stripe's redirect on {host}:{port} ({exc.strerror}): free the port or "
                "pick another with --redirect-port (and register that redirect URI with Stripe)"
            ) from None

    @property
    def redirect_uri(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{CALLBACK_PATH}"

    def wait(self, state: str, timeout: float = OAUTH_TIMEOUT) -> str:
        self._state = state
        deadline = time.monotonic() + timeout
        try:
            while self._params is None and (left := deadline - time.monotonic()) > 0:
                self._server.timeout = left
                self._server.handle_request()
        finally:
            self.close()
        params = self._params
        if params is None:
            forged = (f" ({self.ignored} redirect(s) with a wrong or missing state were ignored: possible forgery)"
                      if self.ignored else "")
            raise OAuthFailed(
                f"No answer from Stripe's consent page within {int(timeout)} s{forged}: "
                f"run `{CONNECT_COMMAND} --oauth --client-id ca_...` again and finish in the browser"
            )
        if params.get("error"):
            if params["error"] == "access_denied":
                raise OAuthFailed(
                    "Access was denied on Stripe's consent page, nothing was stored: run "
                    f"`{CONNECT_COMMAND} --oauth --client-id ca_...` again and choose Connect"
                )
            raise OAuthFailed(
                f"Stripe's consent page returned {params['error']}: "
                f"{params.get('error_description', 'no description')}"
            )
        if not params.get("code"):
            raise OAuthFailed(
                f"The OAuth redirect carried no authorization code: run `{CONNECT_COMMAND} --oauth --client-id ca_...` "
                "again"
            )
        return params["code"]

    def close(self) -> None:
        self._server.server_close()

    def __enter__(self) -> CallbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_oauth_flow(
    client_id: str,
    platform_key: str,
    *,
    scope: str = "read_only",
    connect_base: str = DEFAULT_CONNECT_BASE,
    open_browser: Callable[[str], Any] | None = None,
    announce: Callable[[str], None] = print,
    timeout: float = OAUTH_TIMEOUT,
    redirect_port: int = 0,
) -> StripeCredentials:
    """The whole "Connect with Stripe" dance; returns credentials for the connected account.

    `announce` shows the authorize URL (always: the user may be on a machine without a browser);
    `open_browser` (e.g. `webbrowser.open`) is called with it when given. `redirect_port`: where
    the redirect is received (0: any free port; Stripe needs the redirect URI registered).
    """
    state = new_state()
    with CallbackServer(port=redirect_port) as server:
        url = authorize_url(client_id, server.redirect_uri, state, scope, connect_base)
        announce(url)
        if open_browser:
            # The browser may block (text browsers); the server must be listening already.
            threading.Thread(target=open_browser, args=(url,), daemon=True).start()
        code = server.wait(state, timeout)
    return exchange_code(code, platform_key, client_id=client_id, connect_base=connect_base)


def exchange_code(
    code: str, platform_key: str, *, client_id: str | None = None, connect_base: str = DEFAULT_CONNECT_BASE
) -> StripeCredentials:
    """Trade the single-use code for the connected account's tokens (POST /oauth/token)."""
    token = _oauth_post(
        connect_base, "/oauth/token", platform_key, {"grant_type": "authorization_code", "code": code}
    )
    return StripeCredentials(
        api_key=token["access_token"],
        stripe_account=token.get("stripe_user_id"),
        refresh_token=token.get("refresh_token"),
        client_secret=platform_key,
        client_id=client_id,
    )


def refresh_access_token(
    credentials: StripeCredentials,
    *,
    connect_base: str = DEFAULT_CONNECT_BASE,
    project_dir: str | os.PathLike[str] | None = None,
) -> StripeCredentials:
    """Renew the access token in place with the refresh token; persist it where it came from.

    Stripe revokes the old access token on refresh, so a token read from `.dlt/secrets.toml` is
    written back there (only when the file still holds the token we replaced). Raises
    `ReauthenticationRequired` when Stripe refuses the refresh token (revoked, deauthorized).
    """
    if not (credentials.refresh_token and credentials.client_secret):
        raise ReauthenticationRequired("no refresh token is stored", credentials.stripe_account)
    old_access, old_refresh = str(credentials.api_key or ""), str(credentials.refresh_token)
    try:
        token = _oauth_post(
            connect_base,
            "/oauth/token",
            str(credentials.client_secret),
            {"grant_type": "refresh_token", "refresh_token": old_refresh},
        )
    except OAuthFailed:
        raise ReauthenticationRequired(
            "the OAuth refresh token was revoked or has expired", credentials.stripe_account
        ) from None
    credentials.api_key = token["access_token"]
    if token.get("refresh_token"):
        credentials.refresh_token = token["refresh_token"]
    if token.get("stripe_user_id") and not credentials.stripe_account:
        credentials.stripe_account = token["stripe_user_id"]
    logger.info("Renewed the OAuth access token for %s", credentials.stripe_account or "the account")
    path = secrets_path(project_dir)
    stored = _read_section(path)
    if stored and stored.get("api_key") in (old_access, None) and stored.get("refresh_token") == old_refresh:
        save_credentials(credentials, project_dir)
    return credentials


def deauthorize(
    credentials: StripeCredentials, *, connect_base: str = DEFAULT_CONNECT_BASE
) -> str:
    """Disconnect the connected account from the platform (POST /oauth/deauthorize)."""
    if not (credentials.client_id and credentials.stripe_account and credentials.client_secret):
        raise OAuthFailed("The stored credentials are not from Connect OAuth: nothing to deauthorize")
    answer = _oauth_post(
        connect_base,
        "/oauth/deauthorize",
        str(credentials.client_secret),
        {"client_id": credentials.client_id, "stripe_user_id": credentials.stripe_account},
    )
    return str(answer.get("stripe_user_id") or credentials.stripe_account)


_OAUTH_MESSAGES = {
    "invalid_grant": "Stripe rejected the authorization (invalid_grant: the code or refresh token is "
    "unknown, expired, already used, or from the other mode than the platform key)",
    "invalid_client": "Stripe rejected the Connect client_id (invalid_client: it does not belong to "
    "this platform key, or the account is not connected to it)",
    "invalid_scope": "Stripe rejected the OAuth scope (invalid_scope)",
    "access_denied": "Access was denied on Stripe's consent page",
}


def _oauth_post(connect_base: str, path: str, platform_key: str, data: Mapping[str, str]) -> dict:
    """One POST to Stripe's Connect OAuth endpoints, authenticated with the platform secret key.

    Plain `requests`, not the SDK's `oauth` service: the SDK logs request and response bodies at
    DEBUG, and here both carry tokens. No retries: reusing an authorization code revokes the
    connection, so a POST that may have arrived is never sent twice.
    """
    url = connect_base.rstrip("/") + path
    try:
        response = requests.post(
            url,
            data=dict(data),
            # Bearer, as the SDK sends it; Stripe also takes the key as HTTP Basic user or `client_secret`.
            headers={"Authorization": f"Bearer {platform_key}", "User-Agent": USER_AGENT},
            timeout=HTTP_TIMEOUT,
        )
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise StripeUnavailable(
            f"Stripe's Connect endpoint did not answer POST {path} ({type(exc).__name__}): "
            "check the network or --connect-base and try again"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200 and isinstance(body, dict):
        return body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):  # OAuth errors: {"error": "invalid_grant", "error_description": ...}
        message = _OAUTH_MESSAGES.get(error, f"Stripe's {path} returned {error}")
        raise OAuthFailed(f"{message}: run `{CONNECT_COMMAND} --oauth` again")
    if response.status_code == 401:
        raise OAuthFailed(
            f"Stripe rejected the platform secret key ({mask(platform_key)}) on {path}: "
            f"pass the platform's current secret key to `{CONNECT_COMMAND} --oauth`"
        )
    raise StripeUnavailable(f"Stripe's Connect endpoint answered POST {path} with HTTP {response.status_code}")


# --- storage


def secrets_path(project_dir: str | os.PathLike[str] | None = None) -> Path:
    """`.dlt/secrets.toml` of the given project dir, or of dlt's active project (DLT_PROJECT_DIR, cwd)."""
    if project_dir is not None:
        return Path(project_dir) / ".dlt" / "secrets.toml"
    from dlt.common.runtime import run_context

    return Path(run_context.active().settings_dir) / "secrets.toml"


def save_credentials(credentials: StripeCredentials, project_dir: str | os.PathLike[str] | None = None) -> Path:
    """Merge the credentials into `[sources.stripe.credentials]`, keeping everything else.

    Fields the credentials do not have are removed, so switching from OAuth to a key leaves no stale
    refresh token behind. The file is (re)written with mode 0600.
    """
    path = secrets_path(project_dir)
    doc = _load(path)
    table = _section(doc, create=True)
    assert table is not None
    for name in CREDENTIAL_FIELDS:
        value = getattr(credentials, name)
        if value:
            table[name] = str(value)
        elif name in table:
            del table[name]
    _write_private(path, tomlkit.dumps(doc))
    _reload_dlt_providers()
    return path


def save_endpoints(
    api_base: str | None, connect_base: str | None, project_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """Remember the endpoints of a new connection in `.dlt/config.toml`; the path if it holds any.

    The source reads `[sources.stripe] api_base / connect_base` from config, so a `run` after
    `connect --api-base ...` (the emulator) talks to the same server with no flag. Stripe's own
    endpoints are not written; they remove what an earlier `connect` stored, so a key connected
    without --api-base never goes to a server tried before. Not secrets: plain config.
    """
    endpoints = {
        key: (value or default).rstrip("/")
        for key, value, default in (
            ("api_base", api_base, DEFAULT_API_BASE),
            ("connect_base", connect_base, DEFAULT_CONNECT_BASE),
        )
    }
    custom = {key: value for key, value in endpoints.items() if value not in (DEFAULT_API_BASE, DEFAULT_CONNECT_BASE)}
    path = secrets_path(project_dir).with_name("config.toml")
    doc = _load(path)
    table: Any = doc
    for depth, key in enumerate(SECTION[:2]):
        if not isinstance(table.get(key), Mapping):
            if not custom:
                return None  # nothing stored, nothing to store
            table[key] = tomlkit.table(is_super_table=depth == 0)
        table = table[key]
    changed = False
    for key, value in endpoints.items():
        if key in custom and table.get(key) != value:
            table[key], changed = value, True
        elif key not in custom and key in table:
            del table[key]
            changed = True
    if changed:
        path.write_text(tomlkit.dumps(doc), encoding="utf-8")
        _reload_dlt_providers()
    return path if custom else None


def remove_credentials(project_dir: str | os.PathLike[str] | None = None) -> bool:
    """Drop `[sources.stripe.credentials]` from secrets.toml; False when nothing was stored."""
    path = secrets_path(project_dir)
    if not path.exists():
        return False
    doc = _load(path)
    stripe_table = doc.get("sources", {}).get("stripe")
    if stripe_table is None or "credentials" not in stripe_table:
        return False
    del stripe_table["credentials"]
    _write_private(path, tomlkit.dumps(doc).rstrip() + "\n")
    _reload_dlt_providers()
    return True


def load_credentials() -> StripeCredentials:
    """What the source would use: dlt's providers (env, secrets.toml), then STRIPE_API_KEY."""
    import dlt

    stored = dlt.secrets.get(".".join(SECTION), StripeCredentials)
    return resolve_credentials(stored if stored is not None and stored.api_key else None)


def credentials_env(credentials: StripeCredentials) -> dict[str, str]:
    """The env vars dlt reads the same credentials from (for orchestrators, `--print-env`)."""
    return {
        ENV_PREFIX + name.upper(): str(getattr(credentials, name))
        for name in CREDENTIAL_FIELDS
        if getattr(credentials, name)
    }


def _load(path: Path) -> tomlkit.TOMLDocument:
    return tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()


def _section(doc: tomlkit.TOMLDocument, create: bool) -> Table | None:
    node: Any = doc
    for depth, key in enumerate(SECTION):
        child = node.get(key)
        if not isinstance(child, Mapping):  # absent, or a bare string `credentials = "sk_..."`
            if not create:
                return None
            if child is not None:
                del node[key]
            # Super tables keep `[sources]` / `[sources.stripe]` headers out of the file.
            child = tomlkit.table(is_super_table=depth < len(SECTION) - 1)
            node[key] = child
        node = child
    return node


def _read_section(path: Path) -> dict[str, str] | None:
    if not path.exists():
        return None
    table = _section(_load(path), create=False)
    return {k: str(v) for k, v in table.items()} if table is not None else None


def _write_private(path: Path, text: str) -> None:
    """Write via a 0600 temp file and rename: the secrets are never readable by others, not even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)  # in case the umask took bits away we need, or a filesystem ignored mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _reload_dlt_providers() -> None:
    # dlt caches the parsed toml; without this the same process would keep reading the old values.
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs import PluggableRunContext

    Container()[PluggableRunContext].reload_providers()

"""The connection step: check credentials, authorize in the browser, store and renew tokens.

    validate.py     the one connection check, for `connect` (a report) and every run (raises first)
    oauth.py        Connect OAuth: consent page, code exchange, deauthorize
    apps.py         Stripe Apps OAuth: install link, code exchange, uninstall
    callback.py     the loopback server that receives the browser's redirect (state checked)
    oauth_http.py   one POST to Stripe's OAuth endpoints, errors in one line
    tokens.py       token lifetime: renew when due or refused, rotation under a lock, token stores
    storage.py      secrets.toml and token stores: 0600, atomic, locked

Everything here speaks to the user through `errors.py` and never puts a key or token in a message,
a log line or a repr: keys appear masked (`mask()`), tokens not at all. The client (`client.py`)
never imports this package: it is handed a refresh callable (`tokens.TokenRefresher`).
"""

from .apps import DEFAULT_MARKETPLACE_BASE, MARKETPLACE_BASE_ENV, run_app_flow, uninstall
from .callback import CALLBACK_PATH, DEFAULT_REDIRECT_PORT, CallbackServer
from .oauth import SCOPES, authorize_url, deauthorize, exchange_code, run_oauth_flow
from .oauth_http import OAuthFailed
from .storage import (
    credentials_env,
    load_credentials,
    remove_credentials,
    save_credentials,
    save_endpoints,
    secrets_path,
)
from .storage import reload_dlt_providers as _reload_dlt_providers
from .tokens import TokenRefresher, TokenStore, refresh_access_token, refresher_for, token_store_for
from .validate import ConnectionReport, check_connection, validate

__all__ = [
    "CALLBACK_PATH", "DEFAULT_MARKETPLACE_BASE", "DEFAULT_REDIRECT_PORT", "MARKETPLACE_BASE_ENV", "SCOPES",
    "CallbackServer", "ConnectionReport", "OAuthFailed", "TokenRefresher", "TokenStore", "authorize_url",
    "check_connection", "credentials_env", "deauthorize", "exchange_code", "load_credentials",
    "refresh_access_token", "refresher_for", "remove_credentials", "run_app_flow", "run_oauth_flow",
    "save_credentials", "save_endpoints", "secrets_path", "token_store_for", "uninstall", "validate",
    "_reload_dlt_providers",
]  # fmt: skip

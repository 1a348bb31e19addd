"""`stripe-pipeline connect` and `disconnect`: the connection step at a terminal or in automation.

Keys are read from a hidden prompt, stdin (`--api-key-stdin`) or STRIPE_API_KEY, and are never
echoed: messages show them masked. Handlers return the process exit code from `errors.py`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import shlex
import sys
import webbrowser
from collections.abc import Callable
from typing import Any

import dlt

from stripe_source.client import API_BASE_ENV, CONNECT_BASE_ENV, DEFAULT_API_BASE, DEFAULT_CONNECT_BASE
from stripe_source.connection import (
    CALLBACK_PATH,
    DEFAULT_MARKETPLACE_BASE,
    DEFAULT_REDIRECT_PORT,
    MARKETPLACE_BASE_ENV,
    SCOPES,
    credentials_env,
    deauthorize,
    load_credentials,
    remove_credentials,
    run_app_flow,
    run_oauth_flow,
    save_credentials,
    save_endpoints,
    secrets_path,
    uninstall,
    validate,
)
from stripe_source.credentials import API_KEY_ENV, StripeCredentials
from stripe_source.errors import CONNECT_COMMAND, EXIT_OK, InvalidInput, StripeSourceError

from .redaction import redact  # the same safety net as `run`: no key in any message


def add_commands(subparsers: Any) -> None:
    """Add `connect` and `disconnect` to the CLI's argparse subparsers; `args.handler(args)` runs them."""
    # allow_abbrev=False: an abbreviation must not quietly become another option
    connect = subparsers.add_parser(
        "connect",
        allow_abbrev=False,
        help="add Stripe as a data source: validate a key or authorize with Connect OAuth, then store it",
        description="Validate Stripe credentials and store them in .dlt/secrets.toml (or print them as env vars).",
    )
    key = connect.add_argument_group("API key (default)")
    key.add_argument(
        "--api-key-stdin",
        action="store_true",
        help=f"read the key from stdin instead of a hidden prompt (or set {API_KEY_ENV})",
    )
    key.add_argument("--account", metavar="acct_...", help="read this connected account with the platform key")
    app = connect.add_argument_group("Stripe App OAuth (install link; what Stripe recommends for new integrations)")
    app.add_argument("--app", action="store_true",
                     help="install your Stripe App (stripe_api_access_type: oauth) through its install link; its "
                          "tokens expire hourly and are renewed automatically")
    app.add_argument("--app-id", metavar="app_...", help="the app's id, kept so `disconnect` can uninstall the app")
    app.add_argument("--marketplace-base", metavar="URL",
                     help=f"where the install link points (default {DEFAULT_MARKETPLACE_BASE})")
    oauth = connect.add_argument_group("Connect OAuth (\"Connect with Stripe\", for platforms that have it)")
    oauth.add_argument("--oauth", action="store_true", help="authorize in the browser instead of pasting a key")
    oauth.add_argument("--client-id", metavar="ca_...", help="the platform's Connect client_id, or the app's (--app)")
    oauth.add_argument("--scope", choices=SCOPES, default="read_only", help="access to request (default read_only)")
    oauth.add_argument("--no-browser", action="store_true", help="only print the authorize URL or install link")
    oauth.add_argument(
        "--redirect-port", type=int, default=DEFAULT_REDIRECT_PORT, metavar="PORT",
        help=f"receive Stripe's redirect on 127.0.0.1:PORT (default {DEFAULT_REDIRECT_PORT}); register "
        f"http://127.0.0.1:PORT{CALLBACK_PATH} as a redirect URI in the platform's Connect settings (--oauth) "
        "or in the app manifest's allowed_redirect_uris (--app)",
    )
    oauth.add_argument(
        "--timeout", type=float, default=300.0, metavar="SECONDS", help="wait this long for the browser"
    )
    connect.add_argument("--print-env", action="store_true", help="print env vars instead of writing secrets.toml")
    connect.add_argument(
        "--check", action="store_true", help="re-validate the stored credentials; non-zero if they fail"
    )
    _add_base_options(connect)
    connect.set_defaults(handler=connect_command)

    disconnect = subparsers.add_parser(
        "disconnect",
        allow_abbrev=False,
        help="uninstall the Stripe App or deauthorize the Connect OAuth connection, and remove the stored credentials",
    )
    _add_base_options(disconnect)
    disconnect.set_defaults(handler=disconnect_command)


def _add_base_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-base", metavar="URL", help="Stripe API base URL")
    parser.add_argument("--connect-base", metavar="URL", help="Stripe Connect (OAuth) base URL")


def connect_command(args: argparse.Namespace) -> int:
    try:
        if args.check:
            api_base, connect_base = _bases(args)
            credentials = load_credentials()
            report = validate(credentials, api_base, connect_base=connect_base)
            print("\n".join(report.lines()))
            return EXIT_OK
        # A new connection goes to Stripe unless told otherwise here: not to a server (the
        # emulator) an earlier `connect --api-base` stored.
        api_base, connect_base = _bases(args, stored=False)
        credentials = _obtain_credentials(args, api_base, connect_base)
        report = validate(credentials, api_base, connect_base=connect_base)
        if args.print_env:
            # The report goes to stderr so `eval "$(stripe-pipeline connect --print-env)"` works.
            print("\n".join(report.lines()), file=sys.stderr)
            for name, value in credentials_env(credentials).items():
                print(f"export {name}={shlex.quote(value)}")
            if credentials.is_app:  # its refresh token rotates: env vars alone would strand it after an hour
                print("Note: a Stripe App's refresh token changes at every renewal (hourly): also set "
                      "SOURCES__STRIPE__CREDENTIALS__TOKEN_STORE to a writable file kept between runs, where "
                      "runs keep the newest tokens.", file=sys.stderr)
            # dlt reads these before .dlt/config.toml: the key goes where it was just checked,
            # not to a server an earlier `connect --api-base` stored there
            print(f"export SOURCES__STRIPE__API_BASE={shlex.quote(api_base)}")
            print(f"export SOURCES__STRIPE__CONNECT_BASE={shlex.quote(connect_base)}")
            return EXIT_OK
        path = save_credentials(credentials)
        print("\n".join(report.lines()))
        print(f"Saved to {_shown(path)} [sources.stripe.credentials]; `stripe-pipeline run` will use it.")
        config = save_endpoints(args.api_base, args.connect_base)
        if config:
            print(f"Saved the endpoints (API {api_base}, Connect {connect_base}) to {_shown(config)} [sources.stripe].")
        return EXIT_OK
    except StripeSourceError as exc:
        return _fail(exc)


def disconnect_command(args: argparse.Namespace) -> int:
    try:
        api_base, connect_base = _bases(args)
        path = secrets_path()
        try:
            credentials = load_credentials()
        except InvalidInput:
            credentials = None
        not_deauthorized: StripeSourceError | None = None
        dashboard = "revoke it in the Stripe Dashboard (Settings > Connect > Connected accounts)"
        try:
            if credentials is not None and credentials.is_app:
                dashboard = (f"uninstall the app from its settings page in the Stripe Dashboard of "
                             f"{credentials.stripe_account or 'the account'}")
                if not credentials.app_id:  # Stripe's Install API finds an install by the app's id only
                    print(f"The app stays installed on {credentials.stripe_account or 'the account'}: {dashboard} "
                          "(or connect with --app-id app_... so that `disconnect` can uninstall it).")
                else:
                    print(f"Uninstalled the app from {uninstall(credentials, api_base=api_base)}.")
            elif credentials is not None and credentials.refresh_token and credentials.client_id:
                print(f"Deauthorized {deauthorize(credentials, connect_base=connect_base)} from the platform.")
        except StripeSourceError as exc:  # the stored credentials go anyway: that is what was asked
            not_deauthorized = exc
        removed = remove_credentials()
        if removed:
            print(f"Removed the Stripe credentials from {_shown(path)}.")
        elif credentials is None:
            print("No stored Stripe credentials: nothing to disconnect.")
        else:
            print(
                "The Stripe credentials come from environment variables, not secrets.toml: unset "
                f"{API_KEY_ENV} / SOURCES__STRIPE__CREDENTIALS__* to finish disconnecting."
            )
        if not_deauthorized is not None:
            reason = re.split(r": (?:run|re-authenticate) ", str(not_deauthorized))[0]  # its advice is for connecting
            print(
                f"Error: the stored credentials are removed, but Stripe did not end the connection ({reason}): "
                f"{dashboard}",
                file=sys.stderr,
            )
            return not_deauthorized.exit_code
        return EXIT_OK
    except StripeSourceError as exc:
        return _fail(exc)


def _obtain_credentials(args: argparse.Namespace, api_base: str, connect_base: str) -> StripeCredentials:
    if args.app:
        if args.oauth or args.account:
            raise InvalidInput("--app installs a Stripe App: it goes without --oauth and --account (the account is "
                               "the one that installs the app)")
        if not args.client_id:
            raise InvalidInput(f"--app needs the app's OAuth client id: `{CONNECT_COMMAND} --app --client-id ca_...`")
        if args.app_id and not args.app_id.startswith("app_"):
            raise InvalidInput(f"--app-id must be the app's id (app_...), got {args.app_id!r}")
        app_key = _read_key(args, "Secret key of the account that owns the app (input hidden): ")

        return run_app_flow(
            args.client_id,
            app_key,
            api_base=api_base,
            marketplace_base=(args.marketplace_base or os.environ.get(MARKETPLACE_BASE_ENV)
                              or DEFAULT_MARKETPLACE_BASE),
            app_id=args.app_id,
            open_browser=None if args.no_browser else webbrowser.open,
            announce=_announcer("Open this link to install the app on your Stripe account:"),
            timeout=args.timeout,
            redirect_port=args.redirect_port,
        )
    if args.oauth:
        if not args.client_id:
            raise InvalidInput(
                f"--oauth needs the platform's Connect id: `{CONNECT_COMMAND} --oauth --client-id ca_...`"
            )
        if args.account:
            raise InvalidInput(
                "--account is for API keys; with --oauth the connected account is the one that consents"
            )
        platform_key = _read_key(args, "Platform secret key (input hidden): ")

        return run_oauth_flow(
            args.client_id,
            platform_key,
            scope=args.scope,
            connect_base=connect_base,
            open_browser=None if args.no_browser else webbrowser.open,
            announce=_announcer("Open this URL to connect your Stripe account:"),
            timeout=args.timeout,
            redirect_port=args.redirect_port,
        )
    return StripeCredentials(
        api_key=_read_key(args, "Stripe secret or restricted key (input hidden): "),
        stripe_account=args.account,
    )


def _read_key(args: argparse.Namespace, prompt: str) -> str:
    if args.api_key_stdin:
        key = sys.stdin.readline().strip()
    elif os.environ.get(API_KEY_ENV, "").strip():
        key = os.environ[API_KEY_ENV].strip()
    elif sys.stdin.isatty():
        key = getpass.getpass(prompt).strip()
    else:
        key = ""
    if not key:
        raise InvalidInput(
            f"No Stripe key given: run `{CONNECT_COMMAND}` at a terminal, pipe it with --api-key-stdin, "
            f"or set {API_KEY_ENV}"
        )
    return key


def _bases(args: argparse.Namespace, stored: bool = True) -> tuple[str, str]:
    return (
        _base(args.api_base, "api_base", API_BASE_ENV, DEFAULT_API_BASE, stored),
        _base(args.connect_base, "connect_base", CONNECT_BASE_ENV, DEFAULT_CONNECT_BASE, stored),
    )


def _base(flag: str | None, config_key: str, env: str, default: str, stored: bool) -> str:
    """--flag, then (if `stored`) dlt config `sources.stripe.<key>`, then the env var, then Stripe's own host."""
    return flag or (stored and dlt.config.get(f"sources.stripe.{config_key}")) or os.environ.get(env) or default


def _shown(path: os.PathLike[str]) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _fail(exc: StripeSourceError) -> int:
    print(f"Error: {redact(str(exc))}", file=sys.stderr)
    return exc.exit_code


def _announcer(intro: str) -> Callable[[str], None]:
    """Prints the consent link on stderr, where the prompts go."""

    def announce(url: str) -> None:
        print(f"{intro}\n  {url}", file=sys.stderr)

    return announce

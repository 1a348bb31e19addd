"""Errors the user sees: one line saying what went wrong and the command that fixes it.

Each error carries the process exit code the CLI returns, so an orchestrator can tell a
credential problem (alert a human to re-authenticate) from bad input or a failed load.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_LOAD_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_REAUTHENTICATE = 3
EXIT_PERMISSION = 4
EXIT_STRIPE_UNAVAILABLE = 5
EXIT_RUN_IN_PROGRESS = 6  # another run of the same pipeline (or on the same DuckDB file) holds it
# A run over several accounts (a platform's connected accounts) loaded some and not others; the
# summary names each account's outcome. When none loaded, the code is the first failure's (3, 4, 5, 1).
EXIT_SOME_ACCOUNTS_FAILED = 7
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT); SIGTERM gives 143, as shells report a signal: 128 + its number

CONNECT_COMMAND = "stripe-pipeline connect"


class StripeSourceError(Exception):
    """Base class: `str(error)` is the one-line message shown to the user."""

    exit_code = EXIT_LOAD_FAILED


class InvalidInput(StripeSourceError, ValueError):
    """Bad arguments or configuration, detected before any request is made."""

    exit_code = EXIT_BAD_INPUT


class MissingCredentials(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "No Stripe credentials found: run `"
            + CONNECT_COMMAND
            + "` (stores them in .dlt/secrets.toml) or set STRIPE_API_KEY"
        )


class ReauthenticationRequired(StripeSourceError):
    """The key or token was rejected (revoked, expired, unknown): nothing was loaded."""

    exit_code = EXIT_REAUTHENTICATE

    def __init__(self, reason: str, account: str | None = None) -> None:
        where = f" for account {account}" if account else ""
        super().__init__(
            f"Stripe rejected the credentials{where} ({reason}): "
            f"re-authenticate with `{CONNECT_COMMAND}`"
        )
        self.reason = reason
        self.account = account


class PermissionMissing(StripeSourceError):
    """A restricted key lacks the permission some selected resources need."""

    exit_code = EXIT_PERMISSION

    def __init__(self, resources: dict[str, str], account: str | None = None,
                 follows_changes: bool = False) -> None:
        """`follows_changes`: `events` is missing though not selected; later runs read it for updates."""
        where = f" on account {account}" if account else ""
        why = {"events": ", to follow updates and deletes"} if follows_changes else {}
        listed = ", ".join(f"{name} (needs '{perm}'{why.get(name, '')})" for name, perm in sorted(resources.items()))
        selected = [name for name in resources if not (name == "events" and follows_changes)]
        alternative = ", or leave these resources out with --resources" if selected else ""
        super().__init__(
            f"The Stripe key cannot read {listed}{where}: grant the permission to the restricted "
            f"key in the Stripe Dashboard and run `{CONNECT_COMMAND} --check`{alternative}"
        )
        self.resources = resources


class StripeUnavailable(StripeSourceError):
    """Stripe kept failing after every retry (5xx, timeouts, connection errors)."""

    exit_code = EXIT_STRIPE_UNAVAILABLE


class NotStripe(StripeUnavailable):
    """The server at the API base answered, but not as Stripe does (a proxy's page, a web server)."""

    def __init__(self, url: str, status: int, what: str) -> None:
        super().__init__(
            f"{url} answered HTTP {status} with {what}, which is not Stripe's API: check --api-base (or "
            "STRIPE_API_BASE, [sources.stripe] api_base) and any proxy in between, then run again"
        )

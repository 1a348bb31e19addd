"""Where credentials live: `[sources.stripe.credentials]` in a TOML file, private and written whole.

The file is the project's `.dlt/secrets.toml` (what dlt reads) or a token store (`token_store`, for
credentials that come from environment variables). Every write goes through a 0600 temp file and a
rename, so a reader never sees half a file and the secrets are never readable by others, not even
briefly. `locked()` serializes the processes that rotate tokens in one file.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from ..client import DEFAULT_API_BASE, DEFAULT_CONNECT_BASE
from ..credentials import StripeCredentials, resolve_credentials

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one process at a time is then the user's to ensure
    fcntl = None  # type: ignore[assignment]

SECTION = ("sources", "stripe", "credentials")
ENV_PREFIX = "SOURCES__STRIPE__CREDENTIALS__"
CREDENTIAL_FIELDS = (
    "api_key", "stripe_account", "refresh_token", "client_secret", "client_id",
    "scope", "expires_at", "refresh_expires_at", "app_id",
)  # fmt: skip
_INTEGER_FIELDS = ("expires_at", "refresh_expires_at")


def secrets_path(project_dir: str | os.PathLike[str] | None = None) -> Path:
    """`.dlt/secrets.toml` of the given project dir, or of dlt's active project (DLT_PROJECT_DIR, cwd)."""
    if project_dir is not None:
        return Path(project_dir) / ".dlt" / "secrets.toml"
    from dlt.common.runtime import run_context

    return Path(run_context.active().settings_dir) / "secrets.toml"


def save_credentials(
    credentials: StripeCredentials,
    project_dir: str | os.PathLike[str] | None = None,
    *,
    path: Path | None = None,
    fields: tuple[str, ...] = CREDENTIAL_FIELDS,
    extra: Mapping[str, str] | None = None,
    reload: bool = True,
) -> Path:
    """Merge `fields` of the credentials into `[sources.stripe.credentials]`, keeping everything else.

    Fields the credentials do not have are removed, so switching from OAuth to a key leaves no stale
    refresh token behind. `path` defaults to the project's secrets.toml; `extra` adds plain values
    (a token store's `origin`); `reload` makes dlt in this process read the new values.
    """
    path = path or secrets_path(project_dir)
    doc = _load(path)
    table = _section(doc, create=True)
    assert table is not None
    values: dict[str, Any] = {name: getattr(credentials, name) for name in fields}
    values.update(extra or {})
    for name, value in values.items():
        if value is None or value == "":
            if name in table:
                del table[name]
        else:
            table[name] = int(value) if name in _INTEGER_FIELDS else str(value)
    write_private(path, tomlkit.dumps(doc))
    if reload:
        reload_dlt_providers()
    return path


def read_credentials(path: Path) -> tuple[StripeCredentials, dict[str, str]] | None:
    """The credentials stored in `path` (and the section's other plain values), read now, not from
    dlt's cache: another process may have rotated them since this one started."""
    if not path.exists():
        return None
    table = _section(_load(path), create=False)
    if table is None or not table.get("api_key"):
        return None
    values = {str(k): v for k, v in table.items()}
    credentials = StripeCredentials()
    for name in CREDENTIAL_FIELDS:
        if values.get(name) not in (None, ""):
            setattr(credentials, name, int(values[name]) if name in _INTEGER_FIELDS else str(values[name]))
    return credentials, {k: str(v) for k, v in values.items() if k not in CREDENTIAL_FIELDS}


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`'s sibling lock file (other processes and threads wait).

    The lock file is never deleted: removing it while another process waits on it would let a third
    one lock a new file and run alongside. The kernel drops the lock when a holder dies.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(f".{path.name}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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
        "api_base": (api_base or DEFAULT_API_BASE).rstrip("/"),
        "connect_base": (connect_base or DEFAULT_CONNECT_BASE).rstrip("/"),
    }
    custom = {key: value for key, value in endpoints.items() if value not in (DEFAULT_API_BASE, DEFAULT_CONNECT_BASE)}
    path = secrets_path(project_dir).with_name("config.toml")
    doc = _load(path)
    table = _section(doc, create=bool(custom), keys=SECTION[:2])
    if table is None:
        return None  # nothing stored, nothing to store
    changed = False
    for key, value in endpoints.items():
        if key in custom and table.get(key) != value:
            table[key], changed = value, True
        elif key not in custom and key in table:
            del table[key]
            changed = True
    if changed:
        path.write_text(tomlkit.dumps(doc), encoding="utf-8")
        reload_dlt_providers()
    return path if custom else None


def remove_credentials(project_dir: str | os.PathLike[str] | None = None) -> bool:
    """Drop `[sources.stripe.credentials]` from secrets.toml; False when nothing was stored."""
    path = secrets_path(project_dir)
    if not path.exists():
        return False
    doc = _load(path)
    stripe_table = _section(doc, create=False, keys=SECTION[:2])
    if stripe_table is None or "credentials" not in stripe_table:
        return False
    del stripe_table["credentials"]
    write_private(path, tomlkit.dumps(doc).rstrip() + "\n")
    reload_dlt_providers()
    return True


def load_credentials() -> StripeCredentials:
    """What the source would use: dlt's providers (env, secrets.toml), then STRIPE_API_KEY."""
    import dlt

    reload_dlt_providers()  # a run may have rotated the stored tokens since dlt read the file
    stored = dlt.secrets.get(".".join(SECTION), StripeCredentials)
    return resolve_credentials(stored if stored is not None and stored.api_key else None)


def credentials_env(credentials: StripeCredentials) -> dict[str, str]:
    """The env vars dlt reads the same credentials from (for orchestrators, `--print-env`)."""
    return {
        ENV_PREFIX + name.upper(): str(getattr(credentials, name))
        for name in CREDENTIAL_FIELDS
        if getattr(credentials, name)
    }


def write_private(path: Path, text: str) -> None:
    """Write via a 0600 temp file and rename: the secrets are never readable by others, not even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not publish a file whose bytes a crash would lose
        os.chmod(tmp, 0o600)  # in case the umask took bits away we need, or a filesystem ignored mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def reload_dlt_providers() -> None:
    # dlt caches the parsed toml; without this the same process would keep reading the old values.
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs import PluggableRunContext

    Container()[PluggableRunContext].reload_providers()


def _load(path: Path) -> tomlkit.TOMLDocument:
    return tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()


def _section(doc: tomlkit.TOMLDocument, create: bool, keys: tuple[str, ...] = SECTION) -> Table | None:
    node: Any = doc
    for depth, key in enumerate(keys):
        child = node.get(key)
        if not isinstance(child, Mapping):  # absent, or a bare string `credentials = "sk_..."`
            if not create:
                return None
            if child is not None:
                del node[key]
            # Super tables keep `[sources]` / `[sources.stripe]` headers out of the file.
            child = tomlkit.table(is_super_table=depth < len(keys) - 1)
            node[key] = child
        node = child
    return node

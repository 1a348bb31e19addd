"""The `stripe-pipeline` command: `connect` (the connection step), `run`, `demo`, `disconnect`."""

from .commands import cli, main
from .redaction import redact

__all__ = ["cli", "main", "redact"]

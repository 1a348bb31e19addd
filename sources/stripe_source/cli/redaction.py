"""Stripe secrets masked in everything the command prints or logs: a safety net under the rule that
no key is ever put in a message."""

from __future__ import annotations

import logging
import re

from stripe_source.credentials import mask

_SECRET = re.compile(r"\b((?:sk|rk|pk)_(?:test|live)_|whsec_|rt_|ac_)[A-Za-z0-9]+")


def redact(text: str) -> str:
    """Every Stripe secret in `text` masked as Stripe shows keys (prefix and last four): a safety net."""
    return _SECRET.sub(lambda m: mask(m.group(0)) if m.group(1).count("_") > 1 else m.group(1) + "****", text)


def redact_record(record: logging.LogRecord) -> bool:
    """A log filter: the record's message with every secret masked (a key must never reach a log)."""
    message = record.getMessage()
    shown = redact(message)
    if shown != message:
        record.msg, record.args = shown, ()
    return True

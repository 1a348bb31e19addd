"""Workarounds for dlt, installed by a run when it starts (never on import), each pinned to the
dlt versions that need it, with a test that fails once dlt no longer does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from dlt.version import __version__ as DLT_VERSION


def install_nested_metrics_fallback() -> None:
    """dlt 1.31: items yielded to a nested table (`parent_table_name`) fail the end of extract.

    `Extract._compute_metrics` groups the extracted files by `schema.get_table(name)["resource"]`,
    which only root tables have (dlt refuses the hint on nested ones), so it raises KeyError
    (reported upstream with a repro: see README, "dlt workarounds"). The lookup falls back to the
    nearest ancestor table (nested names extend their parent's with `__`); nothing changes for
    tables that have the property. Idempotent.
    """
    if not DLT_VERSION.startswith("1.31."):
        return
    from dlt.extract import extract as extract_module

    original = extract_module.aggregate_job_metrics
    if getattr(original, "_stripe_nested_fallback", False):
        return

    def aggregate_job_metrics(metrics: Any, key_f: Callable[[Any], Any]) -> Any:
        def key(name: Any) -> Any:
            try:
                return key_f(name)
            except KeyError:
                if not isinstance(name, str):
                    raise
                parts = name.split("__")
                for cut in range(len(parts) - 1, 0, -1):
                    try:
                        return key_f("__".join(parts[:cut]))
                    except KeyError:
                        continue
                raise

        return original(metrics, key)

    aggregate_job_metrics._stripe_nested_fallback = True  # type: ignore[attr-defined]
    extract_module.aggregate_job_metrics = aggregate_job_metrics  # type: ignore[assignment]


class JsonAsTextIsByDesign(logging.Filter):
    """Drops dlt's warning, once per Arrow item, that the item's column hints differ from the
    table's, for the resources of one run whose only difference is by design: JSON columns travel
    as JSON text (Arrow has no JSON type dlt reads) and dlt keeps the hinted `json` type, as its
    warning says. The details stay at INFO; other resources keep the warning."""

    PREFIX = "In resource: "
    SUFFIX = ", when merging arrow schema with dlt schema, several column hints were different."

    def __init__(self, resources: Collection[str]) -> None:
        super().__init__()
        self.resources = resources  # live: the run adds resources as they yield JSON as text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if not isinstance(message, str) or not message.startswith(self.PREFIX) or self.SUFFIX not in message:
            return True
        return message[len(self.PREFIX):message.index(self.SUFFIX)] not in self.resources

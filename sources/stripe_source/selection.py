"""What `resources` names: tables, groups of them, or everything; and what a run leaves out by default.

A group (`payments`, `billing`, `connect`, `issuing`, `files`, `core`) selects its tables that are
on by default; `default` selects every such table (what a run loads when given nothing); `all`
selects every table, the fan-outs that are off by default included. A table named alone is
loaded whatever its default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .catalog import BY_TABLE, CATALOG, GROUPS

EVERYTHING = "all"
DEFAULTS = "default"


def choices() -> str:
    """The names `resources` accepts, for error messages."""
    return f"tables ({', '.join(BY_TABLE)}) or groups ({', '.join([*GROUPS, DEFAULTS, EVERYTHING])})"


def expand_names(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(the tables `names` select, in catalog order; the names that are neither a table nor a group)."""
    wanted: set[str] = set()
    unknown = []
    for name in names:
        if name in BY_TABLE:
            wanted.add(name)
        elif name == EVERYTHING:
            wanted.update(BY_TABLE)
        elif name == DEFAULTS:
            wanted.update(entry.table for entry in CATALOG if entry.default)
        elif name in GROUPS:
            wanted.update(table for table in GROUPS[name] if BY_TABLE[table].default)
        else:
            unknown.append(name)
    return [entry.table for entry in CATALOG if entry.table in wanted], unknown


def default_tables() -> list[str]:
    return [entry.table for entry in CATALOG if entry.default]


def left_out(selection: Mapping[str, frozenset[str]]) -> list[str]:
    """Tables off by default whose parent this run reads without them: what a run should mention."""
    return [entry.table for entry in CATALOG if not entry.default and entry.parent in selection
            and entry.table not in selection[entry.parent]]

"""What `resources` names: tables, groups of them, or everything; and what a run leaves out by default.

Tables are off by default for one of two reasons: a fan-out that costs a request per parent (a
customer's payment methods), or a product the account may not use (Issuing: Stripe refuses its
lists to an account without it). A group (`payments`, `billing`, `connect`, `issuing`, `documents`,
`core`) selects its tables but the costly fan-outs; `default` selects every table on by default
(what a run loads when given nothing); `all` selects every table. A table named alone is loaded
whatever its default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .catalog import BY_TABLE, CATALOG, GROUPS, sub_list_of

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
            wanted.update(default_tables())
        elif name in GROUPS:
            wanted.update(table for table in GROUPS[name] if BY_TABLE[table].default or not costly(table))
        else:
            unknown.append(name)
    return [entry.table for entry in CATALOG if entry.table in wanted], unknown


def costly(table: str) -> bool:
    """A fan-out: a request (or more) per parent."""
    entry = BY_TABLE[table]
    return entry.parent is not None and sub_list_of(entry).fan_out


def default_tables() -> list[str]:
    return [entry.table for entry in CATALOG if entry.default]


def left_out(selection: Mapping[str, frozenset[str]], given: bool = True) -> list[str]:
    """Tables off by default this run does not load, that a user may expect: on a run given no
    `resources`, every one; otherwise the fan-outs whose parent the run reads without them."""
    return [entry.table for entry in CATALOG if not entry.default
            and entry.table not in selection.get(entry.parent or entry.table, frozenset())
            and (not given or entry.parent in selection)]

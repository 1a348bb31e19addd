"""`expand[]`: ids become the objects they name, includable fields appear, up to Stripe's 4 levels.

A path walks the object field by field. A field listed in the object's entry as `expandable`
(stripe-python's `ExpandableField`s, nested ones as dotted paths such as
`parent.subscription_details.subscription`) turns its id, or list of ids, into objects; one listed
as `includable` (a price's `tiers`, a charge's `refunds`) is computed and added. A sub-list is
entered through `data`, an embedded object (a subscription item's `plan`) through its own entry.
Anything else is refused with Stripe's message, naming the field that cannot be expanded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import ApiError, not_expandable
from .objects import BY_OBJECT
from .store import Store
from .versions import expandable

MAX_DEPTH = 4

# An id -> the object it names (rendered in the request's version), or None when unknown.
Resolver = Callable[[str], "dict | None"]


def check_paths(paths: list[str], prefix: str = "") -> None:
    for path in paths:
        if len((prefix + path).split(".")) > MAX_DEPTH:
            raise ApiError(400, "You cannot expand more than 4 levels of a property.", param="expand")


def expand(store: Store, obj: dict, paths: list[str], resolve: Resolver, version: str) -> dict:
    """Expand `paths` (without the list's `data.`) in a decoded object, in place; returns it."""
    for path in paths:
        _walk(store, obj, path.split("."), BY_OBJECT.get(obj.get("object")), "", resolve, version)
    return obj


def _walk(store: Store, node: Any, segments: list[str], entry: Any, base: str, resolve: Resolver,
          version: str) -> None:
    if isinstance(node, list):  # an array of sub-objects: each one
        for item in node:
            _walk(store, item, segments, entry, base, resolve, version)
        return
    if not isinstance(node, dict):
        return
    head, rest = segments[0], segments[1:]
    if entry is None:
        raise not_expandable(head, "expand")
    fields = expandable(entry.object, entry.expandable, version)
    path = base + head
    if not base and head in entry.includable:
        node[head] = entry.includable[head](store, node)
        return _enter(store, node[head], rest, resolve, version)
    if path in fields:
        value = node.get(head)
        node[head] = [_load(v, resolve) for v in value] if isinstance(value, list) else _load(value, resolve)
        return _enter(store, node[head], rest, resolve, version)
    if any(f.startswith(path + ".") for f in fields) and rest:
        if node.get(head) is not None:
            _walk(store, node[head], rest, entry, path + ".", resolve, version)
        return
    value = node.get(head)
    if not base and isinstance(value, dict) and value.get("object") == "list" and rest:
        if rest[0] != "data" or len(rest) < 2:
            raise not_expandable(rest[0] if rest else head, "expand")
        for item in value.get("data", []):
            _walk(store, item, rest[1:], BY_OBJECT.get(item.get("object")), "", resolve, version)
        return
    if rest and isinstance(value, dict) and value.get("object") in BY_OBJECT:  # an embedded object
        return _walk(store, value, rest, BY_OBJECT[value["object"]], "", resolve, version)
    if rest and isinstance(value, list) and value and all(isinstance(v, dict) and v.get("object") in BY_OBJECT
                                                          for v in value):
        for item in value:
            _walk(store, item, rest, BY_OBJECT[item["object"]], "", resolve, version)
        return
    raise not_expandable(head, "expand")


def _enter(store: Store, value: Any, rest: list[str], resolve: Resolver, version: str) -> None:
    """Go on expanding inside what was just expanded (an object, a list of them, a list object)."""
    if not rest or value is None:
        return
    if isinstance(value, dict) and value.get("object") == "list":
        if rest[0] != "data" or len(rest) < 2:
            raise not_expandable(rest[0], "expand")
        for item in value.get("data", []):
            _walk(store, item, rest[1:], BY_OBJECT.get(item.get("object")), "", resolve, version)
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            _walk(store, item, rest, BY_OBJECT.get(item.get("object")), "", resolve, version)
        else:  # an id nobody could expand (an object the emulator does not hold)
            raise not_expandable(rest[0], "expand")


def _load(value: Any, resolve: Resolver) -> Any:
    if not isinstance(value, str):
        return value
    found = resolve(value)
    return found if found is not None else value

"""List parameters: how each documented filter parses its value and which objects it keeps.

A filter is data in the object table (`objects.py`): `Equals("customer")`, `Flag("active")`,
`Range("arrival_date")`... Each one checks its value the way Stripe does (integers, booleans,
hashes, arrays, enums) and answers Stripe's errors for a bad one. Tests that need more than the
object read the account's store through `StoreView` (the table sits below the store it describes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ApiError, invalid_array, invalid_boolean, invalid_choice, invalid_hash, invalid_integer

RANGE_OPS = ("gt", "gte", "lt", "lte")


class StoreView(Protocol):
    """What the object table's callables (filters, list rules, includable values) read of an account's
    objects; `store.Store` is the one implementation."""

    collections: dict[str, Any]
    settled: dict[str, list[str]]
    settled_by: dict[str, str]
    undelivered: set[str]

    def related(self, relation: str, parent: str) -> list[str]: ...
    def rendered(self, resource: str, object_id: str) -> dict: ...
    def extra(self, object_id: str, name: str, default: Any = None) -> Any: ...
    def children(self, resource: str, parent: str) -> list[dict]: ...


def value_at(obj: dict, path: str) -> Any:
    """A dotted field (`promotion.coupon`), as an id when the field holds an expanded object."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value.get("id") if isinstance(value, dict) and "id" in value else value


def parse_int(raw: Any, param: str) -> int:
    if isinstance(raw, (dict, list)):
        raise invalid_integer(raw, param)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise invalid_integer(raw, param) from None


def parse_bool(raw: Any, param: str) -> bool:
    if raw in ("true", True):
        return True
    if raw in ("false", False):
        return False
    raise invalid_boolean(raw, param)


def parse_range(raw: Any, param: str) -> tuple[int | None, int | None]:
    """A timestamp filter as [gte, lt): an exact integer, or a hash of gt/gte/lt/lte."""
    if isinstance(raw, str):
        value = parse_int(raw, param)
        return value, value + 1
    if not isinstance(raw, dict):
        raise invalid_hash(param)
    gte = lt = None
    for op, value in raw.items():
        if op not in RANGE_OPS:
            raise ApiError(400, f"Received unknown parameter: {param}[{op}]", code="parameter_unknown",
                           param=f"{param}[{op}]")
        number = parse_int(value, f"{param}[{op}]")
        if op in ("gt", "gte"):
            low = number + 1 if op == "gt" else number
            gte = low if gte is None else max(gte, low)
        else:
            high = number + 1 if op == "lte" else number
            lt = high if lt is None else min(lt, high)
    return gte, lt


class Filter:
    """A documented list filter. `parse` checks the raw value; `keeps` tests one (decoded) object."""

    def parse(self, raw: Any, param: str) -> Any:
        if not isinstance(raw, str):
            raise ApiError(400, f"Invalid {param}: must be a string", param=param)
        return raw

    def keeps(self, store: StoreView, obj: dict, value: Any) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Equals(Filter):
    """The field (or the id of the object it holds) equals the value."""

    field: str
    casefold: bool = False  # promotion codes: "case-insensitive code"

    def keeps(self, store: StoreView, obj: dict, value: Any) -> bool:
        found = value_at(obj, self.field)
        if self.casefold and isinstance(found, str):
            return found.casefold() == value.casefold()
        return found == value


@dataclass(frozen=True)
class Choice(Filter):
    """An enum: a value outside Stripe's list is refused, the others compared with the field."""

    field: str
    choices: tuple[str, ...]

    def parse(self, raw: Any, param: str) -> Any:
        value = super().parse(raw, param)
        if value not in self.choices:
            raise invalid_choice(value, param, self.choices)
        return value

    def keeps(self, store: StoreView, obj: dict, value: Any) -> bool:
        return value_at(obj, self.field) == value


@dataclass(frozen=True)
class Flag(Filter):
    """A boolean filter: `true`/`false`; objects whose field is null match neither."""

    field: str

    def parse(self, raw: Any, param: str) -> Any:
        return parse_bool(raw, param)

    def keeps(self, store: StoreView, obj: dict, value: Any) -> bool:
        return value_at(obj, self.field) is value


@dataclass(frozen=True)
class Range(Filter):
    """A timestamp filter like `created`: an integer, or a hash of gt/gte/lt/lte."""

    field: str
    of: Callable[[StoreView, dict], int | None] | None = None  # computes the timestamp when no field holds it

    def parse(self, raw: Any, param: str) -> Any:
        return parse_range(raw, param)

    def keeps(self, store: StoreView, obj: dict, value: Any) -> bool:
        stamp = self.of(store, obj) if self.of else value_at(obj, self.field)
        gte, lt = value
        return stamp is not None and (gte is None or stamp >= gte) and (lt is None or stamp < lt)


@dataclass(frozen=True)
class AnyOf(Filter):
    """An array filter (`ids[]`, `lookup_keys[]`): the field is one of the values."""

    field: str
    maximum: int = 100

    def parse(self, raw: Any, param: str) -> Any:
        if not isinstance(raw, list):
            raise invalid_array(param)
        if len(raw) > self.maximum:
            raise ApiError(400, f"You may pass at most {self.maximum} values for {param}.", param=param)
        return frozenset(raw)

    def keeps(self, store: StoreView, obj: dict, value: Any) -> bool:
        return value_at(obj, self.field) in value


@dataclass(frozen=True)
class Where(Filter):
    """A filter whose test needs more than one field (or the store): `test(store, obj, value)`."""

    test: Callable[[StoreView, dict, Any], bool]
    kind: str = "string"  # how the value parses: string | boolean | hash:<key>,<key> | event_type(s)
    choices: tuple[str, ...] = ()
    # the ids that can pass, from an index the store keeps: a list filtered by it reads those only
    index: Callable[[StoreView, Any], Iterable[str]] | None = None

    def parse(self, raw: Any, param: str) -> Any:
        if self.kind == "event_type":  # one name, or a group with `*` wildcards (`invoice.*`)
            return [_event_pattern(super().parse(raw, param))]
        if self.kind == "event_types":  # up to 20 exact names
            if not isinstance(raw, list):
                raise invalid_array(param)
            if len(raw) > 20:
                raise ApiError(400, "You may pass at most 20 values for types.", param=param)
            return [re.compile(re.escape(name) + "$") for name in raw]
        if self.kind == "boolean":
            return parse_bool(raw, param)
        if self.kind.startswith("hash:"):
            if not isinstance(raw, dict):
                raise ApiError(400, f"Invalid {param}: must be a hash", param=param)
            keys = self.kind[5:].split(",")
            for key in raw:
                if key not in keys:
                    raise ApiError(400, f"Received unknown parameter: {param}[{key}]", code="parameter_unknown",
                                   param=f"{param}[{key}]")
            return dict(raw)
        value = super().parse(raw, param)
        if self.choices and value not in self.choices:
            raise invalid_choice(value, param, self.choices)
        return value

    def keeps(self, store: StoreView, obj: dict, value: Any) -> bool:
        return self.test(store, obj, value)


def _event_pattern(name: str) -> re.Pattern:
    return re.compile(re.escape(name).replace(r"\*", "[^.]+(\\.[^.]+)*") + "$")


@dataclass(frozen=True)
class ListRules:
    """What a list endpoint needs beyond its filters."""

    required: tuple[str, ...] = ()  # parameters it refuses to list without (`subscription` for items)
    exclusive: tuple[tuple[str, ...], ...] = ()  # groups of parameters that may not come together
    # objects the list leaves out unless a parameter asks for them: (test on the object, params that lift it)
    hidden: tuple[tuple[Callable[[StoreView, dict, dict], bool], tuple[str, ...]], ...] = ()
    checks: tuple[Callable[[StoreView, dict], None], ...] = ()  # refusals that need the store (raise ApiError)

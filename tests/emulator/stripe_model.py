"""Check JSON objects against stripe-python's generated model of the pinned API version.

stripe-python's classes are generated from Stripe's OpenAPI spec: each class annotates every field
the version returns. A field not typed `Optional[...]` is required and never null; a `Literal[...]`
lists the values Stripe documents (the SDK adds `str` beside it to survive new values; we don't);
`ExpandableField[X]` is an id or, expanded, the object; nested classes describe nested objects.

`problems(obj)` returns every difference as "path: what is wrong", empty when the object conforms.
"""

from __future__ import annotations

import ast
import decimal
import functools
import importlib
import inspect
import pkgutil
import types
import typing
from typing import Any, ForwardRef, Literal, Union

import stripe
from stripe._list_object import ListObject
from stripe._stripe_object import StripeObject, UntypedStripeObject

NONE = type(None)


@functools.cache
def _classes() -> dict[str, list[type]]:
    """Every StripeObject subclass in stripe-python's v1 modules, by class name."""
    found: dict[str, list[type]] = {}
    names = ["stripe"] + [m.name for m in pkgutil.walk_packages(stripe.__path__, "stripe.")
                          if not m.name.startswith(("stripe.v2", "stripe.params", "stripe.events"))
                          and not m.name.endswith("_service")]
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - optional HTTP clients etc.
            continue
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, StripeObject) and value.__module__ == name:
                found.setdefault(value.__name__, []).append(value)
    return found


@functools.cache
def by_object_name() -> dict[str, type]:
    """Stripe's `object` value -> its class (e.g. "line_item" -> InvoiceLineItem)."""
    return {cls.OBJECT_NAME: cls for classes in _classes().values() for cls in classes
            if isinstance(getattr(cls, "OBJECT_NAME", None), str) and not cls.__name__.startswith("Deleted")
            and cls.__module__.count(".") <= 2}


@functools.cache
def _imports(module_name: str) -> dict[str, tuple[str, str]]:
    """The names a model module imports for its annotations (under TYPE_CHECKING): alias -> (module, name)."""
    source = inspect.getsource(importlib.import_module(module_name))
    return {alias.asname or alias.name: (node.module, alias.name) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom) and node.module for alias in node.names}


def _resolve(ref: ForwardRef | str, owner: str) -> type:
    """A forward reference in `owner`'s annotations: the class the module imports under that name."""
    name = ref.__forward_arg__ if isinstance(ref, ForwardRef) else ref
    module, real = _imports(owner).get(name, (owner, name))
    return getattr(importlib.import_module(module), real)


@functools.cache
def fields(cls: type) -> dict[str, Any]:
    """A model class's annotated fields (without ClassVars and private names)."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            if name.startswith("_") or typing.get_origin(annotation) is typing.ClassVar:
                continue
            out[name] = _bind(annotation, klass.__module__)
    return out


def _bind(annotation: Any, owner: str) -> Any:
    """The annotation with its forward references (strings naming classes) replaced by the classes."""
    if isinstance(annotation, (ForwardRef, str)):
        return _resolve(annotation, owner)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if not args or origin is Literal:
        return annotation
    bound = tuple(_bind(a, owner) for a in args)
    if origin in (Union, types.UnionType):
        return Union[bound]  # noqa: UP007 - rebuilt at runtime
    if origin is list:
        return list[bound[0]]
    if origin is dict:
        return dict[bound[0], bound[1]]
    return origin[bound] if len(bound) > 1 else origin[bound[0]]


def optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType) and NONE in typing.get_args(annotation)


def problems(value: Any, annotation: Any = None, path: str = "",
             required_extra: frozenset[str] = frozenset()) -> list[str]:
    """Differences between `value` and the model; `annotation` defaults to the class named by `object`."""
    if annotation is None:
        annotation = by_object_name().get(value.get("object")) if isinstance(value, dict) else None
        if annotation is None:
            return [f"{path or '<root>'}: no stripe-python class for object {value.get('object')!r}"]
    return _check(value, annotation, path or annotation.__name__, required_extra)


def _check(value: Any, annotation: Any, path: str, required_extra: frozenset[str] = frozenset()) -> list[str]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any or annotation is object:
        return []
    if origin in (Union, types.UnionType):
        if value is None:
            return [] if NONE in args else [f"{path}: null where the model requires a value"]
        return _check_union(value, [a for a in args if a is not NONE], path)
    if value is None:
        return [f"{path}: null where the model requires a value"]
    if origin is Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {_listed(args)}"]
    if annotation is bool:
        return [] if isinstance(value, bool) else [f"{path}: {value!r} is not a boolean"]
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not an integer"]
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a number"]
    if annotation is decimal.Decimal:  # a decimal string on the wire
        try:
            ok = isinstance(value, str) and decimal.Decimal(value).is_finite()
        except decimal.InvalidOperation:
            ok = False
        return [] if ok else [f"{path}: {value!r} is not a decimal string"]
    if annotation is str:
        return [] if isinstance(value, str) else [f"{path}: {value!r} is not a string"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__} where the model has a list"]
        return [p for n, item in enumerate(value) for p in _check(item, args[0], f"{path}[{n}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__} where the model has a hash"]
        return [p for key, item in value.items() for p in _check(item, args[1], f"{path}.{key}")]
    if origin is UntypedStripeObject or annotation is UntypedStripeObject:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__} where the model has a hash"]
        if args and args[0] is str:
            return [f"{path}.{k}: {v!r} is not a string" for k, v in value.items() if not isinstance(v, str)]
        return []
    if origin is ListObject or annotation is ListObject:
        return _check_list(value, args[0] if args else Any, path)
    if inspect.isclass(annotation) and issubclass(annotation, StripeObject):
        return _check_object(value, annotation, path, required_extra)
    return [f"{path}: the checker does not know the model type {annotation!r}"]


def _listed(values: Any) -> str:
    names = sorted(map(str, values))
    return str(names) if len(names) <= 12 else f"the model's {len(names)} values ({', '.join(names[:6])}, ...)"


def _check_union(value: Any, options: list[Any], path: str) -> list[str]:
    # An expandable field: an id, or the object (the class named by its `object`).
    classes = options
    if isinstance(value, dict) and any(inspect.isclass(c) and issubclass(c, StripeObject) for c in classes):
        for cls in classes:
            if inspect.isclass(cls) and getattr(cls, "OBJECT_NAME", None) == value.get("object") and \
                    cls.__name__.startswith("Deleted") == bool(value.get("deleted")):
                return _check(value, cls, path)
        nested = [c for c in classes if inspect.isclass(c) and issubclass(c, StripeObject)
                  and not isinstance(getattr(c, "OBJECT_NAME", None), str)]
        if len(nested) == 1:
            return _check(value, nested[0], path)
        return [f"{path}: object {value.get('object')!r} is none of {[getattr(c, '__name__', c) for c in classes]}"]
    literals = [o for o in options if typing.get_origin(o) is Literal]
    if literals:  # Literal[...] | str: the model's enum, and only it
        allowed = {v for lit in literals for v in typing.get_args(lit)}
        return [] if value in allowed else [f"{path}: {value!r} is not one of {_listed(allowed)}"]
    failures = []
    for option in options:
        found = _check(value, option, path)
        if not found:
            return []
        failures.append(found)
    return min(failures, key=len)


def _check_list(value: Any, item: Any, path: str) -> list[str]:
    if not isinstance(value, dict) or value.get("object") != "list":
        return [f"{path}: {value!r:.60} is not a list object"]
    found = [f"{path}.{k}: missing" for k in ("data", "has_more", "url") if k not in value]
    if not isinstance(value.get("has_more"), bool):
        found.append(f"{path}.has_more: not a boolean")
    for n, element in enumerate(value.get("data", [])):
        found += _check(element, item, f"{path}.data[{n}]")
    return found


def _check_object(value: Any, cls: type, path: str, required_extra: frozenset[str]) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: {value!r:.60} is not a {cls.__name__} object"]
    model = fields(cls)
    found = [f"{path}.{name}: not in stripe-python's {cls.__name__}" for name in value if name not in model]
    for name, annotation in model.items():
        if name not in value:
            if not optional(annotation) or name in required_extra:
                found.append(f"{path}.{name}: missing")
            continue
        found += _check(value[name], annotation, f"{path}.{name}")
    return found


def _members(annotation: Any) -> list[Any]:
    """The types a field may hold, through Optional, Union and List."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType, list):
        return [m for arg in args if arg is not NONE for m in _members(arg)]
    return [annotation]


def expandable_paths(cls: type, prefix: str = "", depth: int = 0) -> set[str]:
    """Dotted paths of the model's expandable fields (an id or the object), nested objects and arrays included.

    Arrays are walked without an index (`total_discount_amounts.discount`); other top-level
    objects are not entered (their own fields expand from their own model).
    """
    found: set[str] = set()
    for name, annotation in fields(cls).items():
        members = _members(annotation)
        classes = [c for c in members if inspect.isclass(c) and issubclass(c, StripeObject)]
        if str in members and classes:
            found.add(prefix + name)
        for nested in classes:
            if not isinstance(getattr(nested, "OBJECT_NAME", None), str) and depth < 6:
                found |= expandable_paths(nested, prefix + name + ".", depth + 1)
    return found

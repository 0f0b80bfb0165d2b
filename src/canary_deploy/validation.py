"""Pydantic's validation errors in the user's words: the key path, what was wrong, what
is allowed, and the nearest known key for a typo."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")
_NO_INPUT = ("missing", "extra_forbidden", "unexpected_keyword_argument")


def describe_errors(
    exc: ValidationError,
    root: type,
    *,
    prefix: str = "",
    where: Callable[[str], str] = str,
) -> list[str]:
    """One line per problem of validating `root` (a pydantic model). `prefix` is the
    dotted path of the validated table within the file; `where` may decorate a path
    (e.g. with the environment variable that set it)."""
    lines = []
    for err in exc.errors():
        loc = tuple(str(part) for part in err["loc"])
        path = ".".join(p for p in (prefix, *loc) if p)
        label = where(path)  # none for a rule across fields: its message names them
        lines.append(f"{label}: {_message(err, loc, root)}" if label else _message(err, loc, root))
    return lines


def as_sentence(title: str, problems: list[str]) -> str:
    """`title: problem`, or the title and one problem per line when there are several."""
    if len(problems) == 1:
        return f"{title}: {problems[0]}"
    return f"{title}:" + "".join(f"\n  - {p}" for p in problems)


def _message(err: ErrorDetails, loc: tuple[str, ...], root: type) -> str:
    msg = err["msg"].removeprefix("Value error, ").replace("a valid tuple", "a list")
    if err["type"] in _UNKNOWN_KEY:
        known = known_keys(root, loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        msg = "unknown setting"
        if close:
            msg += f"; did you mean {close[0]}?"
        elif known:
            msg += f" (known here: {', '.join(known)})"
        return msg
    given = err.get("input")
    # A list is shown as its items (a tuple's repr is Python's, not the user's words).
    shown = ", ".join(map(repr, given)) if isinstance(given, (list, tuple)) else repr(given)
    if err["type"] not in _NO_INPUT and not isinstance(err.get("input"), dict) and shown not in msg:
        msg += f" (got {shown})"
    return msg


def known_keys(root: type, loc: tuple[str, ...]) -> list[str]:
    """The keys a table at `loc` (a path of keys from `root`) may hold, sorted."""
    cls: Any = root
    for key in loc:
        if key.isdigit():  # an item of a list of tables
            continue
        cls = _field_types(cls).get(key)
        cls = _table_type(cls)
        if cls is None:
            return []
    return sorted(_field_types(cls))


def _field_types(cls: Any) -> dict[str, Any]:
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return {name: f.annotation for name, f in cls.model_fields.items()}
    if dataclasses.is_dataclass(cls):
        hints = get_type_hints(cls)
        return {f.name: hints.get(f.name) for f in dataclasses.fields(cls)}
    return {}


def _table_type(annotation: Any) -> Any:
    """The model or dataclass inside `X | None`, `tuple[X | int, ...]`, `Annotated[...]`."""
    if _field_types(annotation):
        return annotation
    for arg in get_args(annotation) if get_origin(annotation) is not None else ():
        found = _table_type(arg)
        if found is not None:
            return found
    return None

"""The one typed loader for every user file (scenario TOML, watch config TOML, evidence JSON).

Text is parsed (tomllib or msgspec's JSON decoder), then converted into frozen dataclasses and enums by
msgspec; every error names the key path (``servers[2].faults[0].rcode: expected ...``) and is raised as
the caller's MxdoctorError subclass. Keys a type does not declare are errors too, never ignored.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import msgspec

from mxdoctor.errors import MxdoctorError

T = TypeVar("T")

# Deeper than any file of ours; past it a hostile file would only cost stack and time.
MAX_DEPTH = 64

_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def _path_text(path: str) -> str:
    return path[1:] if path.startswith(".") else path


def _fail(error: type[MxdoctorError], source: str, path: str, problem: str) -> MxdoctorError:
    # A key may hold any character: escape what would break the one-line message.
    where = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in _path_text(path))
    return error(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")


def parse_toml(text: str, *, source: str, error: type[MxdoctorError]) -> dict[str, Any]:
    """Parse TOML text; a syntax error is one line naming the file and the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: not valid TOML: {exc}") from None


def parse_json(data: bytes | str, *, source: str, error: type[MxdoctorError]) -> Any:
    """Parse JSON text; NaN, Infinity and nesting deeper than MAX_DEPTH are errors, not crashes."""
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise error(f"{source}: not valid JSON: {exc}") from None
    except RecursionError:
        raise error(f"{source}: JSON nested too deeply") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise error(f"{source}: JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def convert(data: Any, type_: type[T], *, source: str, error: type[MxdoctorError]) -> T:
    """Convert parsed data into ``type_``; raise ``error`` naming the key path of the first problem."""
    _check_keys(data, type_, "", source, error)
    try:
        return msgspec.convert(data, type_, strict=True)
    except msgspec.ValidationError as exc:
        m = _AT.match(str(exc))
        what = m.group("what") if m else str(exc)
        path = (m.group("path") or "") if m else ""
        raise _fail(error, source, path, _lower_first(what)) from None
    except (TypeError, ValueError) as exc:  # a __post_init__ that rejects a value
        raise error(f"{source}: {exc}") from None


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _check_keys(data: Any, tp: Any, path: str, source: str, error: type[MxdoctorError]) -> None:
    """Reject keys that a dataclass does not declare, with their path (msgspec ignores them)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(tp):
            if (dataclasses.is_dataclass(arg) or get_origin(arg) is dict) and isinstance(data, dict):
                _check_keys(data, arg, path, source, error)
        return
    if origin in (tuple, list) and isinstance(data, list):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        if len(args) == 1:
            for i, item in enumerate(data):
                _check_keys(item, args[0], f"{path}[{i}]", source, error)
        return
    if origin is dict and isinstance(data, dict):
        _, vt = get_args(tp)
        for k, v in data.items():
            _check_keys(v, vt, f"{path}.{k}", source, error)
        return
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(data, dict):
        hints = get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp)}
        for key, value in data.items():
            if key not in known:
                raise _fail(error, source, f"{path}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
            _check_keys(value, hints[key], f"{path}.{key}", source, error)

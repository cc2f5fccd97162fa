"""The one typed loader for every user file (scenario TOML, watch config TOML, evidence JSON).

Text is parsed (tomllib or msgspec's JSON decoder), then converted into frozen dataclasses and enums by
msgspec; every error names the key path (``servers[2].faults[0].rcode: expected ...``) and is raised as
the caller's MxdoctorError subclass. Keys a type does not declare are errors too, never ignored.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import msgspec

from mxdoctor.errors import MxdoctorError, ScenarioError

T = TypeVar("T")

# Deeper than any file of ours; past it a hostile file would only cost stack and time.
MAX_DEPTH = 64

_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
# A __post_init__ names the field it rejects as "`field`: problem" (see ``field_error``).
_FIELD = re.compile(r"^`(?P<field>[^`]+)`: (?P<problem>.*)$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.*)$", re.S)
SHOWN_VALUE = 40  # longest value quoted back in an error; past it only its type is named


def field_error(name: str, problem: str) -> ValueError:
    """The error a ``__post_init__`` raises to reject field ``name``; ``convert`` puts it on the key path."""
    return ValueError(f"`{name}`: {problem}")


def shown(value: Any) -> str:
    """A value quoted in an error: short and on one line, or only its type (never a file's contents)."""
    text = repr(value)
    if len(text) > SHOWN_VALUE or not text.isprintable():
        return f"a {type(value).__name__}"
    return text


def read_text(path: str | Path, *, limit: int, error: type[MxdoctorError]) -> str:
    """Read a user file as UTF-8, at most ``limit`` bytes; a device or a larger file is an error."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise _fail(error, str(p), "", f"cannot read: {exc.strerror or exc.__class__.__name__}") from None
    if len(data) > limit:
        raise _fail(error, str(p), "", f"larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(error, str(p), "", f"not UTF-8 text (byte {exc.start})") from None


def _path_text(path: str) -> str:
    return path[1:] if path.startswith(".") else path


def _fail(error: type[MxdoctorError], source: str, path: str, problem: str) -> MxdoctorError:
    # A key may hold any character: escape what would break the one-line message.
    where = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in _path_text(path))
    if issubclass(error, ScenarioError):
        return error(source, where, problem)
    return error(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")


def shown_key(key: Any) -> str:
    """A key as it goes into a key path: a user's own key name, bounded and printable."""
    text = str(key)
    return text if len(text) <= SHOWN_VALUE and text.isprintable() and text else "<key>"


def parse_toml(text: str, *, source: str, error: type[MxdoctorError]) -> dict[str, Any]:
    """Parse TOML text; a syntax error is one line naming the file and the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message names the line and column only: where the problem is, not the file's text.
        raise _fail(error, source, "", f"not valid TOML: {_one_line(str(exc))}") from None
    except RecursionError:
        raise _fail(error, source, "", "TOML nested too deeply") from None


def parse_json(data: bytes | str, *, source: str, error: type[MxdoctorError]) -> Any:
    """Parse JSON text; NaN, Infinity and nesting deeper than MAX_DEPTH are errors, not crashes."""
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise _fail(error, source, "", f"not valid JSON: {_one_line(str(exc))}") from None
    except RecursionError:
        raise _fail(error, source, "", "JSON nested too deeply") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise _fail(error, source, "", f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):  # only containers go deeper
                stack.append((child, depth + 1))
    return False


def convert(
    data: Any,
    type_: type[T],
    *,
    source: str,
    error: type[MxdoctorError],
    path: str = "",
    unknown_keys: bool = False,
) -> T:
    """Convert parsed data into ``type_``; raise ``error`` naming the key path of the first problem.

    ``path`` is where ``data`` sits in its file (``servers[2].faults[0]``), put in front of every key
    path; ``unknown_keys=True`` ignores keys no type declares (a newer minor version of a schema).
    """
    prefix = f".{path}" if path and not path.startswith((".", "[")) else path
    if not unknown_keys:
        _check_keys(data, type_, prefix, source, error)
    try:
        return msgspec.convert(data, type_, strict=True)
    except msgspec.ValidationError as exc:
        m = _AT.match(str(exc))
        what = m.group("what") if m else str(exc)
        raw = (m.group("path") or "") if m else ""
        where = _name_mapping_keys(data, type_, raw)
        field = _FIELD.match(what)
        missing = _MISSING.match(what)
        if field:
            where, what = f"{where}.{field.group('field')}", field.group("problem")
        elif missing:
            where, what = f"{where}.{missing.group('field')}", "missing: a required key"
        else:
            what = _explain(type_, raw, what)
        raise _fail(error, source, prefix + where, _one_line(_lower_first(what))) from None
    except (TypeError, ValueError) as exc:  # a __post_init__ outside msgspec's reach
        raise _fail(error, source, prefix, _one_line(str(exc))) from None
    except RecursionError:
        raise _fail(error, source, prefix, "nested too deeply") from None


def _explain(type_: Any, path: str, what: str) -> str:
    """msgspec's "Invalid enum value 'x'" with the values the key accepts."""
    m = _ENUM.match(what)
    if not m:
        return what
    choices = _choices(_type_at(type_, path))
    if not choices:
        return what
    return f"expected one of {', '.join(choices)}; got {_shorten(m.group('value'))}"


def _shorten(text: str) -> str:
    return text if len(text) <= SHOWN_VALUE and text.isprintable() else "another value"


def _choices(tp: Any) -> tuple[str, ...]:
    for arg in _unwrap(tp):
        if get_origin(arg) is Literal:
            return tuple(str(a) for a in get_args(arg))
        if isinstance(arg, type) and issubclass(arg, enum.Enum):
            return tuple(str(m.value) for m in arg)
    return ()


def _unwrap(tp: Any) -> tuple[Any, ...]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        return tuple(a for a in get_args(tp) if a is not type(None))
    return (tp,)


_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")  # msgspec writes a mapping's key as [...]


def _type_at(tp: Any, path: str) -> Any:
    """The declared type at a msgspec key path (``.servers[2].faults[0].rcode``), or None."""
    for step in _STEP.finditer(path):
        key, index = step.group(1), step.group(2)
        nxt = None
        for arg in _unwrap(tp):
            origin = get_origin(arg)
            if index is not None and origin in (tuple, list):
                nxt = get_args(arg)[0]
            elif (key is not None or index == "...") and origin is dict:
                nxt = get_args(arg)[1]
            elif key is not None and isinstance(arg, type) and dataclasses.is_dataclass(arg):
                nxt = _hints(arg).get(key)
            if nxt is not None:
                break
        if nxt is None:
            return None
        tp = nxt
    return tp


def _name_mapping_keys(data: Any, tp: Any, path: str) -> str:
    """msgspec's path with each ``[...]`` (a mapping's key, which it does not name) replaced by the
    key whose value fails on its own (``zones[...].text`` -> ``zones.example.com.text``)."""
    if "[...]" not in path:
        return path
    out = raw = ""  # the path as shown, and as msgspec writes it (for the type at each step)
    for step in _STEP.finditer(path):
        key, index = step.group(1), step.group(2)
        value_type = _type_at(tp, raw)
        raw += step.group(0)
        if index == "..." and isinstance(data, dict):
            vt = next((get_args(a)[1] for a in _unwrap(value_type) if get_origin(a) is dict), None)
            bad = next((k for k, v in data.items() if vt is not None and not _converts(v, vt)), None)
            if bad is None:
                return out + path[step.start() :]
            out, data = f"{out}.{shown_key(bad)}", data[bad]
            continue
        out += step.group(0)
        if key is not None and isinstance(data, dict):
            data = data.get(key)
        elif index is not None and index != "..." and isinstance(data, list) and int(index) < len(data):
            data = data[int(index)]
        else:
            data = None
    return out


def _converts(value: Any, tp: Any) -> bool:
    try:
        msgspec.convert(value, tp, strict=True)
    except (msgspec.ValidationError, TypeError, ValueError, RecursionError):
        return False
    return True


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _one_line(text: str) -> str:
    return " ".join(text.split())


@functools.cache
def _hints(tp: type) -> dict[str, Any]:
    """The declared fields of a dataclass with their resolved types."""
    hints = get_type_hints(tp)
    return {f.name: hints[f.name] for f in dataclasses.fields(tp)}


@functools.cache
def _nested(tp: type) -> dict[str, Any]:
    """The fields of a dataclass whose values may hold dataclasses: the only ones to look into."""
    return {name: hint for name, hint in _hints(tp).items() if _holds_dataclass(hint)}


@functools.cache
def _holds_dataclass(tp: Any) -> bool:
    """Whether a value of type ``tp`` may contain a dataclass (else its keys need no check)."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return True
    return any(_holds_dataclass(arg) for arg in get_args(tp) if arg is not Ellipsis)


def _check_keys(data: Any, tp: Any, path: str, source: str, error: type[MxdoctorError]) -> None:
    """Reject keys that a dataclass does not declare, with their path (msgspec ignores them)."""
    if not _holds_dataclass(tp):
        return
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        # Each branch below looks only at data of its own shape (msgspec allows one object-like type).
        for arg in get_args(tp):

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
            _check_keys(v, vt, f"{path}.{shown_key(k)}", source, error)
        return
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(data, dict):
        hints = _hints(tp)
        if not data.keys() <= hints.keys():
            key = next(k for k in data if k not in hints)
            known_keys = ", ".join(sorted(hints))
            raise _fail(error, source, f"{path}.{shown_key(key)}", f"unknown key (known: {known_keys})")
        for key, hint in _nested(tp).items():
            if key in data:
                _check_keys(data[key], hint, f"{path}.{key}", source, error)

"""Shared pieces of the property (fuzz) tests: the example budget and mutations of parsed files.

The normal run tries a few examples per property; ``MXDOCTOR_FUZZ_EXAMPLES=N`` (set by ``make fuzz``)
tries N, and ``MXDOCTOR_FUZZ_SEED`` fixes the seed of a run so it can be repeated.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st

FUZZ_EXAMPLES = int(os.environ.get("MXDOCTOR_FUZZ_EXAMPLES", "0"))


FUZZ_SEED = os.environ.get("MXDOCTOR_FUZZ_SEED")

F = TypeVar("F", bound=Callable[..., Any])


def fuzz(default: int) -> Callable[[F], F]:
    """Settings of a property test: ``default`` examples, derandomised, in the normal run (a fixed,
    fast budget); ``MXDOCTOR_FUZZ_EXAMPLES`` random examples in a long run, ``MXDOCTOR_FUZZ_SEED``
    to repeat one."""

    def wrap(test: F) -> F:
        test = settings(
            max_examples=FUZZ_EXAMPLES or default,
            deadline=None,
            derandomize=FUZZ_SEED is None and not FUZZ_EXAMPLES,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )(test)
        if FUZZ_SEED is not None:
            test = seed(int(FUZZ_SEED))(test)
        return test

    return wrap


# Values that break parsers and models: huge and negative numbers, odd floats, control characters,
# long strings, wrong containers, and nesting.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63) - 1, 10**30, 10**400]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0]),
    st.text(max_size=20),
    st.sampled_from(["", "\x00", "\x1b[31m", "a" * 300, "NaN", "Infinity", ".", "*", "..", "1.2.3.4"]),
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.extend(_paths(value, (*prefix, i)))
    return out


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {**data, head: _set(data[head], rest, value)}
    copy = list(data)
    copy[head] = _set(copy[head], rest, value)
    return copy


def _delete(data: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k != path[0]}
        return [v for i, v in enumerate(data) if i != path[0]]
    head = path[0]
    if isinstance(data, dict):
        return {**data, head: _delete(data[head], path[1:])}
    copy = list(data)
    copy[head] = _delete(copy[head], path[1:])
    return copy


@st.composite
def mutated(draw: st.DrawFn, data: Any, *, max_changes: int = 3) -> Any:
    """``data`` (parsed JSON or TOML) with a few values replaced, keys deleted or added."""
    for _ in range(draw(st.integers(1, max_changes))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "same-type", "same-type", "same-type", "delete", "add", "deepen"]))
        if action == "same-type":
            # Keeps the file loadable more often, so the layers behind the loader see odd values too.
            data = _set(data, path, draw(_like(_get(data, path), data)))
        elif action == "delete" and path:
            data = _delete(data, path)
        elif action == "add":
            target = _get(data, path)
            if isinstance(target, dict):
                data = _set(data, path, {**target, draw(st.text(max_size=8)): draw(json_values)})
            elif isinstance(target, list):
                data = _set(data, path, [*target, draw(json_values)])
        elif action == "deepen":
            depth = draw(st.integers(1, 200))
            value: Any = draw(_scalars)
            for _ in range(depth):
                value = [value]
            data = _set(data, path, value)
        else:
            data = _set(data, path, draw(json_values))
    return data


def _strings(data: Any) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for v in data.values() for s in _strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in _strings(v)]
    return []


def _like(value: Any, whole: Any) -> st.SearchStrategy[Any]:
    """Another value of the same JSON type: a string from elsewhere in the file or a made-up one,
    an odd number, a list cut, repeated or reordered."""
    if isinstance(value, bool) or value is None:
        return st.sampled_from([True, False, None])
    if isinstance(value, int):
        return st.one_of(st.integers(-(2**40), 2**40), st.sampled_from([0, -1, 2**31, 2**63 - 1, 65536]))
    if isinstance(value, float):
        return st.one_of(st.floats(-1e12, 1e12), st.sampled_from([0.0, -1.0, 1e300]))
    if isinstance(value, str):
        return st.one_of(st.sampled_from(sorted(set(_strings(whole)))[:500] or [""]), st.text(max_size=30))
    if isinstance(value, list):
        return st.one_of(
            st.just(value[: len(value) // 2]), st.just(value + value), st.permutations(value).map(list)
        )
    return st.just(value)


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        data = data[step]
    return data


@st.composite
def byte_mutated(draw: st.DrawFn, text: bytes) -> bytes:
    """``text`` with a few bytes flipped, cut, or a chunk inserted."""
    data = bytearray(text)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        else:
            data[pos:pos] = draw(st.binary(max_size=16))
    return bytes(data)

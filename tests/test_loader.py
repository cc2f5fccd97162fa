"""The typed loader: key paths in errors, choices of enums and literals, unknown keys, bounded reads."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from mxdoctor import _loader
from mxdoctor.errors import ConfigError, ScenarioError


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Leaf:
    rcode: Literal["SERVFAIL", "REFUSED"] = "SERVFAIL"
    colour: Colour = Colour.RED
    size: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.size < 10:
            raise _loader.field_error("size", "must be from 1 to 9")


@dataclass(frozen=True)
class Top:
    name: str
    leaves: tuple[Leaf, ...] = ()
    named: dict[str, Leaf] | None = None


def convert(data: object, **kwargs: object) -> Top:
    return _loader.convert(data, Top, source="f.toml", error=ConfigError, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "leaves": [{}, {"rcode": "NOPE"}]},
         "leaves[1].rcode: expected one of SERVFAIL, REFUSED; got 'NOPE'"),
        ({"name": "x", "leaves": [{"colour": "green"}]}, "leaves[0].colour: expected one of red, blue; got 'green'"),
        ({"name": "x", "leaves": [{"size": 12}]}, "leaves[0].size: must be from 1 to 9"),
        # msgspec writes a mapping's key as [...]: the loader finds and names it
        ({"name": "x", "named": {"a": {}, "b.c": {"size": "big"}}}, "named.b.c.size: expected `int`, got `str`"),
        ({"name": "x", "named": {"a": {"colour": "x"}}}, "named.a.colour: expected one of red, blue; got 'x'"),
        ({"name": "x", "named": {"a": {"sise": 1}}}, "named.a.sise: unknown key (known: colour, rcode, size)"),
        ({"leaves": []}, "name: missing: a required key"),
        ({"name": "x", "leaves": [{"rcode": "x" * 100}]},
         "leaves[0].rcode: expected one of SERVFAIL, REFUSED; got another value"),
    ],
    ids=["literal", "enum", "post-init", "type", "mapping-enum", "unknown-key", "missing", "long-value"],
)
def test_errors_name_the_key_path(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        convert(data)
    assert str(caught.value) == f"f.toml: {message}"


def test_a_path_prefix_and_the_scenario_error_shape() -> None:
    with pytest.raises(ScenarioError) as caught:
        _loader.convert({"size": 0}, Leaf, source="s.toml", error=ScenarioError, path="servers[2].faults[0]")
    assert (caught.value.key, caught.value.problem) == ("servers[2].faults[0].size", "must be from 1 to 9")


def test_unknown_keys_may_be_ignored() -> None:
    assert convert({"name": "x", "later": 1}, unknown_keys=True) == Top("x")


def test_shown_values_are_short_and_printable() -> None:
    assert _loader.shown("SERVFAILED") == "'SERVFAILED'"
    assert _loader.shown("x" * 100) == "a str"
    assert _loader.shown("a\x1b[31m") == "'a\\x1b[31m'"  # escaped by repr
    assert _loader.shown_key("k\n") == "<key>"


def test_reads_are_bounded_and_say_where(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        _loader.read_text(path, limit=10, error=ConfigError)
    with pytest.raises(ConfigError, match="larger than 10 bytes"):
        _loader.read_text("/dev/zero", limit=10, error=ConfigError)
    with pytest.raises(ConfigError, match="cannot read"):
        _loader.read_text(tmp_path / "missing", limit=10, error=ConfigError)

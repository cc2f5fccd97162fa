"""Hostile scenario files: size limits checked before expansion, nothing sent off the machine unless
asked, errors that say where and not what, and a fuzz of mutated built-in scenarios."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _fuzz import byte_mutated, fuzz, json_values, mutated
from _helpers import MINIMAL_SCENARIO
from mxdoctor.cli import main
from mxdoctor.errors import ScenarioError
from mxdoctor.lab import runner, scenario

RELIABILITY = Path("/work/shared/reliability/scenario")

GENERATE_1M = MINIMAL_SCENARIO.replace('text = "@ MX', 'text = "$GENERATE 1-1000000 host$ A 127.0.0.1\\n@ MX')

OFFBOX = """
description = "a forwarder and a name server off the machine"
domains = ["example.com"]

[zones."example.com"]
text = "@ MX 10 mail.example.com.\\nmail A 127.0.0.25\\nsub NS ns.elsewhere.example.net."

[zones."example.net"]
text = "ns.elsewhere A 192.0.2.54"

[[servers]]
name = "ns1.example.com"
address = "127.0.0.11"
zones = ["example.com"]

[[servers]]
name = "ns1.example.net"
address = "127.0.0.13"
zones = ["example.net"]

[[servers]]
name = "internal"
role = "forwarder"
forwarders = ["192.0.2.53:6450"]
"""


def one_line(err: ScenarioError) -> None:
    text = str(err)
    assert "\n" not in text and len(text) < 400, text


def test_a_generate_line_for_a_million_records_is_refused_at_once() -> None:
    began = time.monotonic()
    with pytest.raises(ScenarioError) as caught:
        scenario.parse(GENERATE_1M, source="g.toml")
    assert time.monotonic() - began < 1.0
    assert caught.value.key == "zones.example.com"
    assert f"more than {scenario.MAX_ZONE_RECORDS} records in one zone" in caught.value.problem
    one_line(caught.value)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("$GENERATE 1-4990 h$ A 127.0.0.1", None),  # within the limit: loads
        ("$GENERATE 1-100000/10 h$ A 127.0.0.1", "more than"),
        ("$GENERATE 9-1 h$ A 127.0.0.1", "runs from START up to STOP"),
        ("$GENERATE lots h$ A 127.0.0.1", "needs START-STOP"),
    ],
    ids=["within", "step", "backwards", "no-range"],
)
def test_generate_ranges_are_checked_before_expansion(line: str, problem: str | None) -> None:
    text = MINIMAL_SCENARIO.replace('text = "@ MX', f'text = "{line}\\n@ MX')
    if problem is None:
        loaded = scenario.parse(text, source="g.toml")
        assert "h4990.example.com." in loaded.zone("example.com").text
        return
    with pytest.raises(ScenarioError, match=problem):
        scenario.parse(text, source="g.toml")


def test_records_in_all_zones_are_bounded() -> None:
    zones = "".join(
        f'\n[zones."z{i}.example.com"]\ntext = "$GENERATE 1-4000 h$ A 127.0.0.1"\n' for i in range(6)
    )
    servers = '\n[[servers]]\nname = "ns1.example.org"\naddress = "127.0.0.12"\nzones = [{}]\n'.format(
        ", ".join(f'"z{i}.example.com"' for i in range(6))
    )
    with pytest.raises(ScenarioError, match=f"more than {scenario.MAX_RECORDS} records in all"):
        scenario.parse(MINIMAL_SCENARIO + zones + servers, source="z.toml")


def test_a_file_too_large_or_a_device_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text(MINIMAL_SCENARIO + "#" * scenario.MAX_FILE_BYTES, encoding="utf-8")
    with pytest.raises(ScenarioError, match="larger than"):
        scenario.load(big)
    with pytest.raises(ScenarioError, match="larger than"):
        scenario.load("/dev/zero")


def test_offbox_forwarders_and_glue_are_found() -> None:
    loaded = scenario.parse(OFFBOX, source="o.toml")
    assert scenario.offbox(loaded) == [
        ("forwarder of internal", "192.0.2.53"),
        ("name server ns.elsewhere.example.net.", "192.0.2.54"),
    ]
    for name in scenario.builtin_names():
        assert scenario.offbox(scenario.load(name)) == [], name


def test_the_lab_refuses_an_offbox_scenario_before_it_binds_anything() -> None:
    loaded = scenario.parse(OFFBOX, source="o.toml")
    with pytest.raises(ScenarioError, match="off the machine, to forwarder of internal 192.0.2.53 \\(and 1 more\\)"):
        with runner.running(loaded):
            pytest.fail("the lab started")


def test_lab_serve_refuses_offbox_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "offbox.toml"
    path.write_text(OFFBOX, encoding="utf-8")
    assert main(["lab", "serve", str(path)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-offbox" in err
    assert main(["lab", "show", str(path)]) == 0  # showing it sends nothing


def test_errors_say_where_not_what(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$hidden-secret-hash:19000:0:99999:7:::\n", encoding="utf-8")
    keyed = tmp_path / "keyed.toml"
    keyed.write_text(MINIMAL_SCENARIO + 'password = "hidden-secret-value"\n', encoding="utf-8")
    long_value = tmp_path / "long.toml"
    long_value.write_text(MINIMAL_SCENARIO.replace('role = "x"', "") + 'role = "hidden-secret' + "x" * 60 + '"\n')
    for path in (secret, keyed, long_value):
        assert main(["lab", "show", str(path)]) == 3
        err = capsys.readouterr().err
        assert err.startswith(f"mxdoctor: {path}: ") and err.count("\n") == 1, err
        assert "hidden-secret" not in err, err


REPRODUCERS = sorted(RELIABILITY.glob("s*.toml")) if RELIABILITY.is_dir() else []


@pytest.mark.skipif(not REPRODUCERS, reason="reliability reproducers not on this machine")
@pytest.mark.parametrize("path", REPRODUCERS, ids=[p.stem for p in REPRODUCERS])
def test_reliability_reproducers(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    began = time.monotonic()
    status = main(["lab", "serve", str(path)])
    err = capsys.readouterr().err
    assert status == 3 and err.startswith(f"mxdoctor: {path}: ") and err.count("\n") == 1, err
    assert time.monotonic() - began < 2.0


# -- fuzz ---------------------------------------------------------------------------------------

BUILTINS = {name: (scenario.scenarios_dir() / f"{name}.toml").read_text(encoding="utf-8") for name in
            scenario.builtin_names()}
PARSED = {name: tomllib.loads(text) for name, text in BUILTINS.items()}


def _toml_value(value: Any) -> str:
    """A TOML literal for a JSON-like value (None becomes an empty table: TOML has no null)."""
    if value is None:
        return "{}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, int) or value == value else "nan"
    if isinstance(value, str):
        return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _dump(data: dict[str, Any]) -> str:
    return "\n".join(f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in data.items()) + "\n"


@st.composite
def _mutated_scenario(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(sorted(BUILTINS)))
    how = draw(st.sampled_from(["values", "values", "bytes"]))
    if how == "bytes":
        return draw(byte_mutated(BUILTINS[name].encode())).decode("utf-8", "replace")
    data = draw(mutated(PARSED[name]))
    return _dump(data if isinstance(data, dict) else {"description": data})


def _loads_or_one_line_error(text: str) -> None:
    try:
        scenario.parse(text, source="fuzz.toml")
    except ScenarioError as exc:
        one_line(exc)
        assert str(exc).startswith("fuzz.toml: ")


def test_the_dumper_round_trips_every_builtin() -> None:
    for name, data in PARSED.items():
        assert tomllib.loads(_dump(data)) == data, name


@fuzz(200)
@given(text=_mutated_scenario())
def test_fuzz_mutated_scenarios_load_or_say_why(text: str) -> None:
    _loads_or_one_line_error(text)


@fuzz(150)
@given(key=st.sampled_from(["servers", "zones", "smtp", "expect", "domains", "description"]), value=json_values)
def test_fuzz_any_value_in_a_top_key_loads_or_says_why(key: str, value: Any) -> None:
    _loads_or_one_line_error(_dump({**PARSED["healthy"], key: value}))

"""Loading evidence files: key-named one-line errors, the reproducers of known crashes, and a fuzz
of mutated real evidence through ``explain`` (load, analyse, render): it loads or says why, in one line."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _fuzz import byte_mutated, fuzz, json_values, mutated
from mxdoctor import cli, evidence
from mxdoctor.errors import EvidenceError

DATA = Path(__file__).parent / "data" / "evidence"
FILES = sorted(DATA.glob("*.json"))
HEALTHY = json.loads((DATA / "healthy.json").read_text(encoding="utf-8"))
RELIABILITY = Path("/work/shared/reliability/evidence")


def explain(path: Path, *extra: str) -> tuple[int, str]:
    """``mxdoctor explain PATH`` in-process: (exit status, stderr); any other exception escapes."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["explain", str(path), *extra])
    return status, err.getvalue()


def one_line_error(exc: BaseException) -> None:
    text = str(exc)
    assert "\n" not in text and text.strip() == text and len(text) < 400, text


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_recorded_evidence_file_loads_and_round_trips(path: Path) -> None:
    ev = evidence.load(path)
    assert evidence.loads(evidence.dumps(ev)) == ev


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": "other"}, "schema: not mxdoctor evidence"),
        ({"version": "2.0"}, "version: evidence version '2.0' is not readable"),
        ({"version": 1}, "version: evidence version 1 is not readable"),
        ({"exchanges": [{"id": 1}]}, "exchanges[0].view: missing: a required key"),
        ({"views": [{"name": "x", "kind": "elsewhere"}]}, "views[0].kind: expected one of system, resolver"),
        ({"deadline_hit": "yes"}, "deadline_hit: expected `bool`, got `str`"),
        ({"typo": 1}, "typo: unknown key"),
    ],
    ids=["schema", "major", "version-type", "missing", "enum", "type", "unknown-key"],
)
def test_errors_name_the_key_path(change: dict[str, object], message: str) -> None:
    with pytest.raises(EvidenceError) as err:
        evidence.from_dict({**HEALTHY, **change}, source="f.json")
    assert str(err.value).startswith(f"f.json: {message}")
    one_line_error(err.value)


def test_a_newer_minor_version_may_add_members() -> None:
    ev = evidence.from_dict({**HEALTHY, "version": "1.7", "added_later": [1]})
    assert evidence.replace(ev, version="1.0") == evidence.from_dict(HEALTHY)


def test_a_huge_number_in_a_float_field_names_it() -> None:
    data = json.loads(json.dumps(HEALTHY))
    data["exchanges"][0]["duration"] = 10**400
    with pytest.raises(EvidenceError, match=r"exchanges\[0\]\.duration: number out of range"):
        evidence.from_dict(data)


@pytest.mark.parametrize("text", [b"NaN", b"[Infinity]", b"[" * 100 + b"]" * 100, b"{", b"\xff\xfe"])
def test_json_that_is_not_plain_json_is_an_error(text: bytes) -> None:
    with pytest.raises(EvidenceError) as err:
        evidence.loads(text, source="f.json")
    one_line_error(err.value)


def test_errors_say_where_not_what(tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$hidden-secret-hash:19000:0:99999:7:::\n", encoding="utf-8")
    status, err = explain(secret)
    assert status == 3
    assert "hidden-secret" not in err and err.count("\n") == 1


def test_a_device_is_read_with_a_bound() -> None:
    with pytest.raises(EvidenceError, match="larger than"):
        evidence.load("/dev/zero")


REPRODUCERS = sorted(RELIABILITY.glob("e*.json")) if RELIABILITY.is_dir() else []


@pytest.mark.skipif(not REPRODUCERS, reason="reliability reproducers not on this machine")
@pytest.mark.parametrize("path", REPRODUCERS, ids=[p.stem for p in REPRODUCERS])
def test_reliability_reproducers_exit_3_in_one_line(path: Path) -> None:
    status, err = explain(path)
    assert status == 3
    assert err.startswith(f"mxdoctor: {path}: ") and err.count("\n") == 1


# The same three defects, built here so the suite keeps them where the reproducers are absent.
def _deep(tmp_path: Path) -> Path:
    path = tmp_path / "deep.json"
    path.write_text('{"schema": "mxdoctor.evidence", "notes": ' + "[" * 5000 + "]" * 5000 + "}")
    return path


def _huge_float(tmp_path: Path) -> Path:
    data = json.loads(json.dumps(HEALTHY))
    data["exchanges"][0]["started"] = 10**400
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(data))
    return path


def _audit_evidence(tmp_path: Path, probe: str) -> Path:
    server = {"address": "127.0.0.11", "port": 53, "name": "ns1.example.com."}
    run = {"name": probe, "zone": "example.com.", "qname": "example.com.", "server": server, "exchanges": []}
    path = tmp_path / f"audit-{probe}.json"
    path.write_text(json.dumps({**HEALTHY, "command": "audit", "audit": [run]}))
    return path


def _unknown_probe(tmp_path: Path) -> Path:
    return _audit_evidence(tmp_path, "no-such-probe")


def test_audit_evidence_with_known_probes_explains(tmp_path: Path) -> None:
    status, err = explain(_audit_evidence(tmp_path, "soa"))
    assert status in (0, 1, 2) and err == ""


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (_deep, "JSON nested too deeply"),
        (_huge_float, "exchanges[0].started: number out of range"),
        (_unknown_probe, "audit[0].name: not an audit probe"),
    ],
    ids=["deep-nesting", "float-field-huge-int", "audit-unknown-probe"],
)
def test_known_crashes_are_one_line_errors(tmp_path: Path, build: object, message: str) -> None:
    path = build(tmp_path)  # type: ignore[operator]
    status, err = explain(path)
    assert status == 3 and err.count("\n") == 1
    assert message in err


# -- fuzz ---------------------------------------------------------------------------------------

_parsed = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in FILES}


@st.composite
def _mutated_evidence(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(sorted(_parsed)))
    how = draw(st.sampled_from(["values", "values", "bytes"]))
    if how == "bytes":
        return draw(byte_mutated((DATA / f"{name}.json").read_bytes()))
    data = draw(mutated(_parsed[name]))
    # json.dumps writes huge floats as Infinity, which the loader must refuse too.
    return json.dumps(data, allow_nan=True).encode()


def _explain_survives(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "fuzz.json"
    path.write_bytes(text)
    for extra in ((), ("--json",)):
        status, err = explain(path, *extra)
        assert status in (0, 1, 2, 3), status
        # Exit 3 is also a diagnosis (UNKNOWN); an error is one line on stderr.
        assert err == "" or (status == 3 and err.startswith("mxdoctor: ") and err.count("\n") == 1), err


@fuzz(120)
@given(text=_mutated_evidence())
def test_fuzz_explain_loads_or_says_why(tmp_path_factory: pytest.TempPathFactory, text: bytes) -> None:
    _explain_survives(tmp_path_factory.mktemp("ev"), text)


@fuzz(200)
@given(value=json_values)
def test_fuzz_any_json_value_loads_or_raises_evidence_error(value: object) -> None:
    try:
        evidence.from_dict({**HEALTHY, "views": value} if isinstance(value, list) else value)
    except EvidenceError as exc:
        one_line_error(exc)

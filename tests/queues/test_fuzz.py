"""Property-based fuzzing of every queue reader: mutated real listings and generated garbage never
raise, every record read keeps the record bounds, and the JSON, text and Nagios renderings stay valid.

The normal run is fixed and fast (derandomised, FUZZ_EXAMPLES per test); ``make fuzz`` runs a long,
random one: MXDOCTOR_FUZZ_EXAMPLES=5000 (examples per test), MXDOCTOR_FUZZ_SEED=N to replay a seed.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from mxdoctor.errors import QueueError
from mxdoctor.queues import formats, record, shape, status
from mxdoctor.queues.record import Malformed, QueuedMessage
from mxdoctor.report import queue as _render

pytestmark = pytest.mark.fuzz

DATA = Path(__file__).parent.parent / "data" / "queues"
NOW = 1700100000.0
FUZZ_EXAMPLES = 80  # per test: the five tests take a few seconds in all
LONG = int(os.environ.get("MXDOCTOR_FUZZ_EXAMPLES", "0"))
SEED = os.environ.get("MXDOCTOR_FUZZ_SEED")

F = TypeVar("F", bound=Callable[..., None])


def fuzz(fn: F) -> F:
    """The fixed budget, or the long run's; database off so that a run never depends on an earlier one."""
    configured = settings(
        max_examples=LONG or FUZZ_EXAMPLES,
        deadline=None,
        derandomize=not LONG and SEED is None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )(fn)
    return hypothesis.seed(int(SEED))(configured) if SEED is not None else configured


SAMPLES: dict[str, list[str]] = {
    "postfix-json": ["postfix-3.7-postqueue-j.jsonl", "postfix-3.7-postqueue-j-mixed.jsonl"],
    "postfix-text": ["postfix-3.7-postqueue-p.txt", "postfix-3.7-postqueue-p-long-reason.txt"],
    "exim": ["exim-bp.txt", "exim-4.96-bp.txt"],
    "sendmail": ["sendmail-mailq.txt"],
    "opensmtpd": ["opensmtpd-show-queue.txt", "opensmtpd-6.8-show-queue.txt"],
    "exchange-csv": ["exchange2010-get-message.csv", "exchange2010-get-queue.csv"],
    "exchange-json": ["exchange2016-get-message.json", "exchange2016-get-queue.json"],
}
TEXTS = {name: [(DATA / f).read_text(encoding="utf-8-sig") for f in files] for name, files in SAMPLES.items()}

# Values that broke readers once, or could: numbers beyond every range, non-numbers, nesting,
# terminal escapes, separators of each format, very long runs.
NASTY = [
    "1e400", "-1e400", "Infinity", "-Infinity", "NaN", "9" * 400, "9" * 5000, "-1", "0", "00", "1.5",
    "[" * 3000, "{" * 3000, "]", "}", '"', "\\", "\\u0000", "\x00", "\x1b[2J", "\x1b]0;x\x07", "\u202e",
    " " * 5000, "\t", "\n", "\r", "\r\n", "|", "||||||||||||||", "<", ">", "<>", "@", "(", ")", ",", ";",
    "/Date(99999999999999999999999)/", "/Date(-99999999999999)/", "true", "false", "null", "{}", "[]",
    '{"x": 1}', "2.9K", "999999999999999999999w", "99999999999999999999G", "Feb 29 12:00", "Thu Nov 16 01:00:00",
    "*** frozen ***", "-Queue ID-", "\ufeff", "\ufffd", "a" * 3000, "x@" + "y." * 600 + "example",
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**30, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40) | st.sampled_from(NASTY),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@st.composite
def mutated(draw: st.DrawFn, texts: list[str]) -> str:
    """A real sample with a few splices of nasty values, deletions and repeated lines."""
    text = draw(st.sampled_from(texts))
    for _ in range(draw(st.integers(1, 6))):
        how = draw(st.sampled_from(["insert", "replace", "delete", "line", "token", "repeat"]))
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(0, 40)))
        if how == "insert":
            text = text[:i] + draw(st.sampled_from(NASTY)) + text[i:]
        elif how == "replace":
            text = text[:i] + draw(st.sampled_from(NASTY) | st.text(max_size=8)) + text[j:]
        elif how == "delete":
            text = text[:i] + text[j:]
        elif how == "repeat":
            # A piece of a line repeated into a long run: what makes a pattern backtrack.
            text = text[:i] + text[i:j] * draw(st.integers(2, 5000)) + text[j:]
        elif how == "line":
            lines = text.splitlines(keepends=True) or [""]
            k = draw(st.integers(0, len(lines) - 1))
            lines.insert(draw(st.integers(0, len(lines))), lines[k])
            text = "".join(lines)
        else:
            # A number or word of the sample replaced: the fields that readers convert.
            words = list(re.finditer(r"\d+(?:\.\d+)?|[A-Za-z]+", text))
            if words:
                m = draw(st.sampled_from(words))
                text = text[: m.start()] + draw(st.sampled_from(NASTY)) + text[m.end() :]
    return text


def _set_somewhere(draw: st.DrawFn, obj: Any) -> Any:
    """``obj`` (a parsed JSON document) with one value somewhere inside replaced by a drawn one."""
    if isinstance(obj, dict) and obj and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(obj)))
        obj[key] = _set_somewhere(draw, obj[key])
        return obj
    if isinstance(obj, list) and obj and draw(st.booleans()):
        k = draw(st.integers(0, len(obj) - 1))
        obj[k] = _set_somewhere(draw, obj[k])
        return obj
    return draw(JSON_VALUES)


# The members each JSON reader converts: most retyped values go there.
FIELDS = {
    "postfix-json": [("queue_id",), ("arrival_time",), ("message_size",), ("sender",), ("queue_name",),
                     ("forced_expire",), ("recipients",), ("recipients", 0), ("recipients", 0, "address"),
                     ("recipients", 0, "delay_reason")],
    "exchange-json": [("Identity",), ("DateReceived",), ("Size",), ("Recipients",), ("Recipients", 0),
                      ("LastError",), ("RetryCount",), ("MessageCount",), ("NextHopDomain",),
                      ("FirstRetryTime",), ("FromAddress",), ("Status",), ("Queue",)],
}


def _set_field(draw: st.DrawFn, obj: Any, path: tuple[str | int, ...]) -> Any:
    if not path:
        return draw(JSON_VALUES)
    key, rest = path[0], path[1:]
    if isinstance(key, int):
        if not isinstance(obj, list) or not obj:
            return obj
        obj[0] = _set_field(draw, obj[0], rest)
    elif isinstance(obj, dict):
        obj[key] = _set_field(draw, obj.get(key), rest)
    return obj


def _retype(draw: st.DrawFn, obj: Any, fmt: str) -> Any:
    if draw(st.integers(0, 3)) == 0:
        return _set_somewhere(draw, obj)
    return _set_field(draw, obj, draw(st.sampled_from(FIELDS[fmt])))


@st.composite
def json_retyped(draw: st.DrawFn, fmt: str) -> str:
    """A JSON sample (line per object, or one document) with values of the wrong type or range."""
    text = draw(st.sampled_from(TEXTS[fmt]))
    if fmt == "postfix-json":
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        for _ in range(draw(st.integers(1, 3))):
            k = draw(st.integers(0, len(lines) - 1))
            lines[k] = _retype(draw, lines[k], fmt)
        return "".join(json.dumps(obj) + "\n" for obj in lines)
    doc = json.loads(text)
    objects = doc if isinstance(doc, list) else [doc]
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(0, len(objects) - 1))
        objects[k] = _retype(draw, objects[k], fmt)
    return json.dumps(objects, indent=draw(st.sampled_from([None, 2])))


GARBAGE = (
    st.binary(max_size=3000).map(lambda b: b.decode("utf-8", "replace"))
    | st.lists(st.text(max_size=80) | st.sampled_from(NASTY), max_size=30).map("\n".join)
    | st.lists(st.sampled_from(NASTY + ["a@b.example", " ", "25m", "1.2K", "1rAbCd-000123-AB"]), max_size=40)
    .map(" ".join)
)


def exercise(fmt_name: str | None, text: str) -> None:
    """Read ``text`` as ``fmt_name`` (None: detect it) and render it every way ``mxdoctor queue`` does."""
    started = time.process_time()
    lines = text.splitlines(keepends=True)
    if fmt_name is None:
        head = lines[: formats.SNIFF_LINES]
        found = formats.detect(head)
        if found is None:
            return
        fmt = found
    else:
        fmt = formats.FORMATS[fmt_name]
    items = list(formats.records(fmt, iter(lines), now=NOW))
    for item in items:
        assert type(item) in (QueuedMessage, Malformed)
        if isinstance(item, QueuedMessage):
            assert record.check(item) == item  # every record read is within the bounds
        else:
            assert item.line >= 1
    render(shape.build(items, now=NOW), fmt.name)
    # A few hundred KB at most: anything near a second is a pattern gone quadratic.
    assert time.process_time() - started < 5


def render(result: shape.Shape, fmt: str) -> None:
    limits = status.Thresholds()
    verdict = status.evaluate(result, limits)
    doc = _render.to_json(result, source="fuzz", fmt=fmt, status=verdict, limits=limits, top=20)
    json.loads(json.dumps(doc, allow_nan=False))
    line = status.nagios(result, limits, verdict, "fuzz")
    assert not _CONTROL.search(line) and "\n" not in line and line.count("|") == 1
    out = io.StringIO()
    _render.print_text(Console(file=out, width=80), result, source="fuzz", fmt=fmt, status=verdict, top=20)
    assert not _CONTROL.search(out.getvalue().replace("\n", ""))


@fuzz
@given(data=st.data())
def test_mutated_samples_of_every_format(data: st.DataObject) -> None:
    fmt = data.draw(st.sampled_from(sorted(SAMPLES)), label="format")
    exercise(fmt, data.draw(mutated(TEXTS[fmt]), label="listing"))


@fuzz
@given(data=st.data())
def test_mutated_samples_detected(data: st.DataObject) -> None:
    fmt = data.draw(st.sampled_from(sorted(SAMPLES)), label="format")
    exercise(None, data.draw(mutated(TEXTS[fmt]), label="listing"))


@fuzz
@given(data=st.data())
def test_json_values_of_any_type(data: st.DataObject) -> None:
    fmt = data.draw(st.sampled_from(["postfix-json", "exchange-json"]), label="format")
    exercise(fmt, data.draw(json_retyped(fmt), label="listing"))


@fuzz
@given(fmt=st.sampled_from(sorted(SAMPLES)), text=GARBAGE)
def test_garbage_for_every_format(fmt: str, text: str) -> None:
    exercise(fmt, text)


@fuzz
@given(fmt=st.sampled_from(sorted(SAMPLES)), data=st.data())
def test_files_through_the_source(fmt: str, data: st.DataObject) -> None:
    raw = data.draw(mutated(TEXTS[fmt]) | GARBAGE, label="listing").encode("utf-8", "surrogatepass")
    if data.draw(st.booleans(), label="raw bytes"):
        raw = raw[: len(raw) // 2] + data.draw(st.binary(max_size=200), label="bytes") + raw[len(raw) // 2 :]
    with tempfile.NamedTemporaryFile(suffix=".queue") as fh:
        fh.write(raw)
        fh.flush()
        forced = data.draw(st.sampled_from([None, fmt]), label="--format")
        try:
            name, items = formats.open_source(formats.Source(path=fh.name, format=forced), now=NOW)
        except QueueError as exc:
            assert "\n" not in str(exc)
            return
        render(shape.build(items, now=NOW), name or "")

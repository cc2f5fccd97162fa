"""docs/lab.md documents every scenario key, every fault kind and every built-in, and its example runs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from mxdoctor.lab import faults, scenario

DOC = Path(__file__).resolve().parents[2] / "docs" / "lab.md"


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def test_every_key_and_fault_kind_is_documented(doc: str) -> None:
    keys = (
        scenario._TOP_KEYS
        | scenario._SERVER_KEYS
        | scenario._SMTP_KEYS
        | scenario._EXPECT_KEYS
        | {f.name for kind in faults.KINDS.values() for f in dataclasses.fields(kind)}
    )
    missing = sorted(k for k in keys | set(faults.KINDS) if f"`{k}`" not in doc)
    assert missing == []


def test_the_fault_table_is_generated_from_the_classes(doc: str) -> None:
    # `make docs` rewrites it; a kind added, renamed or re-documented without that fails here.
    assert faults.rewrite_doc(doc) == doc
    table = doc[doc.index(faults.DOC_BEGIN) : doc.index(faults.DOC_END)]
    assert [line.split("`")[1] for line in table.splitlines()[3:]] == list(faults.KINDS)


def test_every_builtin_is_named(doc: str) -> None:
    assert [n for n in scenario.builtin_names() if f"`{n}`" not in doc] == []


def test_the_documented_example_loads(doc: str) -> None:
    example = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert example is not None
    loaded = scenario.parse(example.group(1), source="docs/lab.md", name="doc-example")
    assert loaded.expect.findings == ("AAAA_SERVFAIL",)
    assert [f.kind for f in loaded.server("ns1.example.net").faults] == ["rcode"]

"""The self-contained HTML report: content from recorded evidence (no network), escaping of hostile
text, no external reference, and the seed case opened in a real headless Chromium."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
from browser import assert_not_blank, open_browser

from mxdoctor import api, evidence
from mxdoctor.report import html

DATA = Path(__file__).parents[1] / "data" / "evidence"
DOCS = Path(__file__).parents[2] / "docs" / "img"
# Anything that would make a browser fetch: attributes, CSS url()/@import, or a scheme outside the SVG namespace.
_EXTERNAL = re.compile(r"""\b(?:src|href|action|srcset|poster)\s*=|url\(|@import|(?:https?|ftp)://(?!www\.w3\.org/2000/svg")""")


def report(name: str) -> str:
    return html.render(api.explain(DATA / f"{name}.json"))


def test_seed_case_content() -> None:
    page = report("aaaa-servfail")
    assert page.startswith("<!doctype html>")
    assert "<svg" in page and "</svg>" in page
    # The picture marks the failing AAAA of mail.example.net with colour AND a word.
    box = re.search(r'<g class="box fail">(.*?)</g>', page, re.S)
    assert box is not None and "mail.example.net AAAA" in box.group(1)
    assert "FAIL" in box.group(1) and "SERVFAIL" in box.group(1)
    assert 'class="box fail"' not in page.split("mail.example.net A<")[1].split("</g>")[0]
    assert "receiving side" in page
    row = re.search(r"<tr><td[^>]*>exchange2010</td>.*?</tr>", page, re.S)
    assert row is not None and "451 4.4.0" in row.group(0) and "DEFER" in row.group(0)
    assert "dig @" in page  # the reproduction to send to the other side


def test_healthy_has_no_failure_marks() -> None:
    page = report("healthy")
    assert 'class="box fail"' not in page and "Root cause:" not in page
    assert "No fault that makes an MTA defer or bounce" in page


@pytest.mark.parametrize("name", sorted(p.stem for p in DATA.glob("*.json")))
def test_every_recorded_case_is_self_contained(name: str) -> None:
    page = report(name)
    assert not _EXTERNAL.search(page), _EXTERNAL.search(page)
    assert "<script" not in page


def test_hostile_text_is_escaped() -> None:
    ev = evidence.loads((DATA / "aaaa-servfail.json").read_text(), source="x")
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    lookups = tuple(dataclasses.replace(lk, records=(evil,)) if lk.qtype == "A" else lk for lk in ev.lookups)
    from mxdoctor import analysis

    page = html.render(analysis.analyse(evidence.replace(ev, lookups=lookups, target=evil)))
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;" in page


@pytest.mark.browser
@pytest.mark.parametrize("lab", ["aaaa-servfail"], indirect=True)
def test_seed_case_in_chromium(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = api.diagnose(lab.domains[0], **api.lab_options(lab), smtp=True)
    out = tmp_path / "report.html"
    out.write_text(html.render(d), encoding="utf-8")
    with open_browser() as driver:
        driver.get(out.as_uri())
        # Nothing was fetched: the page is one file.
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        figure = driver.find_element("css selector", "#mail-path svg")
        assert figure.size["width"] > 300 and figure.size["height"] > 100
        failing = [e.text for e in driver.find_elements("css selector", "#mail-path g.box.fail text")]
        assert any("mail.example.net AAAA" in t for t in failing), failing
        assert any("SERVFAIL" in t and t.startswith("FAIL") for t in failing), failing
        cells = driver.find_elements("xpath", "//table[@id='verdicts']//tr[td[1][normalize-space()='exchange2010']]")
        assert cells and "451 4.4.0" in cells[0].text
        png = driver.get_screenshot_as_png()
        assert_not_blank(png)
        if os.environ.get("MXDOCTOR_WRITE_SCREENSHOTS"):
            DOCS.mkdir(parents=True, exist_ok=True)
            (DOCS / "report.png").write_bytes(png)

"""The watch's dashboard served for real (uvicorn on loopback) over a real watch of a Postfix listing,
diagnosing through the lab's seed case; opened in headless Chromium; access rules and the JSON API."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "monitor"))
sys.path.insert(0, str(Path(__file__).parents[1] / "report"))
sys.path.insert(0, str(Path(__file__).parent))
from browser import assert_not_blank, open_browser  # noqa: E402
from fleet_helpers import TOKENS, snapshots  # noqa: E402
from watch_helpers import write_queue  # noqa: E402

from mxdoctor import api  # noqa: E402
from mxdoctor.errors import ConfigError  # noqa: E402
from mxdoctor.lab import runner  # noqa: E402
from mxdoctor.monitor import history, state, watch  # noqa: E402
from mxdoctor.monitor.fleet import Fleet, Host, HostWatcher  # noqa: E402
from mxdoctor.queues import formats  # noqa: E402
from mxdoctor.web import app as web_app  # noqa: E402
from mxdoctor.web import runtime  # noqa: E402
from mxdoctor.web.server import WebServer  # noqa: E402
from mxdoctor.web.watchboard import WatchBoard  # noqa: E402

DOCS = Path(__file__).parents[2] / "docs" / "img"
DNS = "Host or domain name not found. Name service error for name=mail.example.net type=AAAA: Host not found, try again"
TOKEN = "s3cret-token-of-the-dashboard"


class Site:
    def __init__(self, tmp: Path, card: Any, options: web_app.WebOptions) -> None:
        self.queue = tmp / "queue.jsonl"
        self.state = state.State(tmp / "state.sqlite")
        self.history = history.History(str(tmp / "state.sqlite"))
        probe = api.lab_options(card)
        self.board = WatchBoard(self.history, lambda d: api.diagnose(d, probe), ["internal (the lab's resolver)"])
        self.watcher = watch.Watcher(
            watch.WatchOptions(source=formats.Source(path=str(self.queue)), interval=1, alert_age=600),
            self.state, [], lambda d: api.summarise(self.board.diagnose(d)),
        )
        # A pushed Exchange 2010 host beside it, diagnosed through the resolver its snapshot names.
        self.card = card
        self.fleet = Fleet(tmp / "hosts", {"sbs1": Host.make("sbs1", token=TOKENS["sbs1"])})
        self.host_state = state.State(tmp / "sbs1.sqlite")
        self.host_watcher = HostWatcher(
            self.fleet, "sbs1", watch.WatchOptions(source=self.fleet.source("sbs1"), interval=1, alert_age=600,
                                                   host="sbs1"),
            self.host_state, [], runtime._host_diagnoser(probe, self.board, self.fleet, "sbs1"),
        )
        self.server = WebServer(web_app.Dashboard(self.board, options, self.fleet).app, "127.0.0.1",
                                runner._free_port())
        self.server.start()

    def poll(self) -> watch.PollResult:
        result = self.watcher.poll()
        self.board.observe("mail1 postfix", result, self.state)
        return result

    def push_and_poll_host(self) -> watch.PollResult:
        request = urllib.request.Request(f"{self.server.url}/api/v1/queues/sbs1", data=snapshots(self.card)["sbs1"],
                                         headers={"Authorization": f"Bearer {TOKENS['sbs1']}"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 202
        result = self.host_watcher.poll()
        self.board.observe("sbs1", result, self.host_state, age_from=self.fleet.age_from("sbs1"))
        return result

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
        request = urllib.request.Request(self.server.url + path, headers=headers or {})
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=60) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read().decode(), dict(e.headers)

    def close(self) -> None:
        self.server.stop()
        self.history.close()
        self.state.close()
        self.host_state.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with runner.running("aaaa-servfail") as card:
        s = Site(tmp_path, card, web_app.WebOptions())
        try:
            yield s
        finally:
            s.close()


def test_overview_api_and_domain_page(site: Site) -> None:
    import time

    now = time.time()
    write_queue(site.queue, now, [("bob@example.com", 3600, DNS), ("ann@example.com", 1200, DNS)])
    result = site.poll()
    assert result.ok and result.raised == ["example.com"]
    code, body, _ = site.get("/api/v1/state")
    state_doc = json.loads(body)
    assert code == 200 and state_doc["schema"] == web_app.STATE_SCHEMA
    (queue,) = state_doc["queues"]
    (dom,) = queue["domains"]
    assert dom["domain"] == "example.com" and dom["firing"] and dom["messages"] == 2
    assert dom["diagnosis"]["root_cause"] == "AAAA_SERVFAIL" and dom["diagnosis"]["verdicts"]["exchange2010"] == "defer"
    code, page, headers = site.get("/")
    assert code == 200 and "example.com" in page and "FIRING" in page and "AAAA_SERVFAIL" in page
    assert "default-src 'none'" in headers["content-security-policy"]
    site.poll()
    code, page, _ = site.get("/domain/example.com")
    assert code == 200 and "<polyline" in page and 'src="/domain/example.com/report"' in page
    code, report, _ = site.get("/domain/example.com/report")
    assert code == 200 and "451 4.4.0" in report and 'class="box fail"' in report


def test_post_needs_csrf(site: Site) -> None:
    request = urllib.request.Request(site.server.url + "/diagnose", data=b"domain=example.com", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    with err.value:
        assert err.value.code == 403


@pytest.mark.browser
def test_dashboard_in_chromium(site: Site) -> None:
    import time

    write_queue(site.queue, time.time(), [("bob@example.com", 3600, DNS)])
    site.poll()
    site.poll()
    assert site.push_and_poll_host().raised == ["example.com"]
    from selenium.webdriver.support.ui import WebDriverWait

    with open_browser(1280, 1100) as driver:
        driver.get(site.server.url + "/")
        rows = driver.find_elements("css selector", "tr.domain[data-domain='example.com']")
        assert rows and "FIRING" in rows[0].text and "AAAA_SERVFAIL" in rows[0].text
        # The pushed host's queue is listed under its name, with the views its diagnosis used.
        (heading,) = [h for h in driver.find_elements("css selector", "h2") if h.text == "sbs1"]
        host_row = heading.find_element("xpath", "following-sibling::table[1]//tr[@data-domain='example.com']")
        assert "FIRING" in host_row.text and "sbs1's internal DNS" in host_row.text
        overview = driver.get_screenshot_as_png()
        assert_not_blank(overview)
        rows[0].find_element("css selector", "a").click()
        assert driver.find_elements("css selector", "#history svg polyline")
        driver.switch_to.frame(driver.find_element("id", "report"))
        assert "451 4.4.0" in driver.find_element("id", "verdicts").text
        driver.switch_to.default_content()
        driver.get(site.server.url + "/diagnose")
        driver.find_element("name", "domain").send_keys("example.com")
        driver.find_element("css selector", "#diagnose-form button").click()
        # The report comes when the diagnosis is done: wait for it rather than race the navigation.
        WebDriverWait(driver, 60).until(lambda d: d.find_elements("id", "root-cause"))
        assert "AAAA_SERVFAIL" in driver.find_element("id", "root-cause").text
        assert driver.find_elements("css selector", "#mail-path g.box.fail")
        if os.environ.get("MXDOCTOR_WRITE_SCREENSHOTS"):
            DOCS.mkdir(parents=True, exist_ok=True)
            (DOCS / "dashboard.png").write_bytes(overview)


def test_token_required_beyond_loopback() -> None:
    with pytest.raises(ConfigError, match="requires a token"):
        web_app.Dashboard(None, web_app.WebOptions(host="0.0.0.0"))  # type: ignore[arg-type]


def test_token_guards_every_page(tmp_path: Path) -> None:
    with runner.running("healthy") as card:
        s = Site(tmp_path, card, web_app.WebOptions(token=TOKEN))
        try:
            assert s.get("/")[0] == 303 and s.get("/api/v1/state")[0] == 401
            assert s.get("/api/v1/state", {"Authorization": "Bearer wrong-token-wrong-token"})[0] == 401
            code, body, _ = s.get("/api/v1/state", {"Authorization": f"Bearer {TOKEN}"})
            assert code == 200 and TOKEN not in body
            code, page, _ = s.get("/login")
            assert code == 200 and TOKEN not in page
            code, page, _ = s.get("/", {"Authorization": f"Bearer {TOKEN}"})
            assert code == 200 and TOKEN not in page
        finally:
            s.close()

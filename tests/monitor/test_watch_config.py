"""The watch config: every reproducer of a mistyped file ends in one line and exit 3 (or, for a state
file that is not a database, a fresh start), every bad value names its key, and no generated file
gets past the loader with anything but a checked Settings or a ConfigError."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxdoctor.errors import ConfigError
from mxdoctor.monitor import config

ROOT = Path(__file__).resolve().parents[2]
REPRO = Path(__file__).parent / "data" / "config"

CASES = {
    "c01-interval-list.toml": "interval: expected",
    "c02-metrics-number.toml": "metrics: expected",
    "c03-max-diagnoses-text.toml": "max_diagnoses: expected",
    "c04-queues-string.toml": "queues: expected `array",
    "c05-interval-inf.toml": "interval: must be a finite duration",
    "c07-webhook-url-list-with-number.toml": "webhook.url[1]: expected `str`, got `int`",
    "c08-format-list.toml": "format: expected",
}


def run_watch(tmp_path: Path, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    text = (REPRO / name).read_text().replace("/tmp/mxdoctor-repro/", f"{tmp_path}/")
    cfg = tmp_path / name
    cfg.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "mxdoctor.cli", "watch", "--config", str(cfg), "--once", "--no-log", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "xdg")},
    )


@pytest.mark.parametrize("name", sorted(CASES), ids=lambda n: n.split("-")[0])
def test_reproducer_is_one_line_and_exit_3(tmp_path: Path, name: str) -> None:
    proc = run_watch(tmp_path, name)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert CASES[name] in lines[0] and name in lines[0], lines[0]


def test_reproducer_state_not_a_database_moves_it_aside(tmp_path: Path) -> None:
    bad = tmp_path / "cfg-not-a-db.sqlite"
    garbage = os.urandom(4096)
    bad.write_bytes(garbage)
    proc = run_watch(tmp_path, "c06-state-not-a-database.toml")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "not a mxdoctor state database" in line and "moved aside" in line and "starting fresh" in line
    (aside,) = tmp_path.glob("cfg-not-a-db.sqlite.corrupt-*")
    assert aside.read_bytes() == garbage
    again = run_watch(tmp_path, "c06-state-not-a-database.toml")  # the fresh state is a good one now
    assert again.returncode == 0 and again.stderr == ""


def check(tmp_path: Path, text: str, **command_line: Any) -> config.Settings:
    cfg = tmp_path / "watch.toml"
    cfg.write_text(text)
    return config.merge(str(cfg), command_line, {})


BAD = [
    ('source = "q"\ninterval = -5\n', "interval: must be a finite duration"),
    ('source = "q"\ninterval = "100000d"\n', "interval: must be at most 365d"),
    ('source = "q"\ninterval = 0\n', "interval: must be more than zero"),
    ('source = "q"\nalert_age = nan\n', "alert_age: must be a finite duration"),
    ('source = "q"\ninterval = "soon"\n', "interval: not a duration"),
    ('source = "q"\nmetrics = "127.0.0.1:70000"\n', "metrics: port must be 1-65535"),
    ('source = "q"\nmetrics = "127.0.0.1"\n', "metrics: wants ADDR:PORT"),
    ('source = "q"\ndns_port = 0\n', "dns_port: must be between 1 and 65535"),
    ('source = "q"\nmax_diagnoses = true\n', "max_diagnoses: expected `int"),
    ('source = "q"\ndiagnose = "yes"\n', "diagnose: expected `bool"),
    ('source = "q"\nwebhooks = ["ftp://x.example/"]\n', "webhooks: must be an http:// or https:// URL"),
    ('source = "q"\nwebhooks = ["http:///nohost"]\n', "webhooks: must be an http:// or https:// URL"),
    ('source = "q"\nwebhooks = ["http://h.example:99999/"]\n', "webhooks: not a URL"),
    ('source = "q"\n[webhook]\nurl = "http://h.example/"\ntimeout = "forever"\n', "webhook.timeout: not a duration"),
    ('source = "q"\n[email]\nrelai = "x"\n', "email.relai: unknown key"),
    ('source = "q"\n[email]\nfrom = 5\n', "email.from: expected"),
    ('source = "q"\n[email]\nrelay = "h.example:0"\nfrom = "a@b"\nto = "c@d"\n', "email.relay: port must be"),
    ('source = "q"\n[email]\nrelay = "h.example"\nfrom = "a@b"\nto = "c@d"\ntls = "maybe"\n', "email.tls: must be"),
    ('source = "q"\n[email]\nrelay = "h.example"\nfrom = "a@b"\nto = "c@d"\ntls = "none"\nusername = "u"\n',
     "allow_plaintext"),
    ('source = "q"\nmta = "qmail"\n', "mta: must be one of"),
    ('source = "q"\nformat = "qmail"\n', "format: must be one of"),
    ('source = "q"\nqueues = ["deferred", 3]\n', "queues[1]: expected `str`"),
    ('source = "q"\nintervall = "5m"\n', "intervall: unknown key"),
    ('source = "q"\ndiagnoser = "no colon"\n', "diagnoser: must be MODULE:FUNCTION"),
    ('interval = [\n', "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_value_names_its_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        check(tmp_path, text)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_command_line_values_are_checked_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--metrics: port must be 1-65535, got '70000'"):
        check(tmp_path, 'source = "q"\n', metrics="127.0.0.1:70000")
    with pytest.raises(ConfigError, match="--webhook: must be an http"):
        check(tmp_path, 'source = "q"\n', webhooks=["hooks.example/x"])
    with pytest.raises(ConfigError, match="--retry-max: not a duration"):
        check(tmp_path, 'source = "q"\n', retry_max="often")


def test_good_file_with_old_spellings(tmp_path: Path) -> None:
    s = check(tmp_path, 'mta = "postfix"\nalert-age = "1h"\nqueue = ["deferred"]\nresolver = ["127.0.0.1"]\n'
                        'metrics = "[::1]:9425"\nwebhook = "https://h.example/x"\n'
                        '[email]\nrelay = "[::1]:587"\nfrom = "w@x.example"\nto = "o@x.example"\nstarttls = true\n')
    assert s.postfix == "" and s.alert_age == 3600 and s.queues == ("deferred",) and s.resolvers == ("127.0.0.1",)
    assert s.metrics == ("::1", 9425) and s.webhooks == ("https://h.example/x",)
    assert s.email is not None and (s.email.relay, s.email.port, s.email.tls, s.email.require_tls) == (
        "::1", 587, "starttls", True)


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["60s", "30m", "127.0.0.1:9425", "http://127.0.0.1:1/x", "postfix", "deferred", "a@b"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
KEYS = st.sampled_from([f.name for f in config.dataclasses.fields(config.WatchFile)] + ["queue", "alert-age", "x"])
TABLE = st.dictionaries(st.sampled_from(["url", "timeout", "relay", "from", "to", "tls", "username", "zz"]), VALUES,
                        max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, VALUES | TABLE, max_size=6))
def test_any_file_gives_settings_or_one_config_error(data: dict[str, Any]) -> None:
    data = {k: v for k, v in data.items() if v is not None}  # TOML has no null
    try:
        s = config.merge(config.from_data(data, "fuzz.toml"), {}, {})
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(("fuzz.toml", "e-mail", "default"))
        return
    assert s.interval > 0 and s.interval <= config.MAX_DURATION
    assert s.metrics is None or 1 <= s.metrics[1] <= 65535

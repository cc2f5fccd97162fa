"""The route state machine, with no sockets: questions out, Lookups in."""

from __future__ import annotations

import pytest

from mxdoctor import route
from mxdoctor.errors import InvalidTarget
from mxdoctor.evidence import Lookup, Outcome
from mxdoctor.route import Question, RouteKind


def lk(q: Question, outcome: Outcome, *records: str, cnames: tuple[str, ...] = ()) -> Lookup:
    return Lookup("v", None, q.qname, q.qtype, outcome, records=records, cnames=cnames)


def test_mx_then_both_address_types_of_every_exchanger_at_once() -> None:
    m = route.RouteMachine("example.com")
    assert m.wanted() == (Question("example.com.", "MX"),)
    q = m.wanted()[0]
    m.give(q, lk(q, Outcome.NOERROR, "20 mx2.example.com.", "10 mx1.example.com."))
    assert set(m.wanted()) == {
        Question("mx1.example.com.", "A"),
        Question("mx1.example.com.", "AAAA"),
        Question("mx2.example.com.", "A"),
        Question("mx2.example.com.", "AAAA"),
    }
    for w in m.wanted():
        m.give(w, lk(w, Outcome.NOERROR, "192.0.2.1") if w.qtype == "A" else lk(w, Outcome.SERVFAIL))
    assert m.done
    r = m.result()
    assert r.kind is RouteKind.MX
    assert [x.host for x in r.exchangers] == ["mx1.example.com.", "mx2.example.com."]
    assert r.exchangers[0].addresses4 == ("192.0.2.1",)
    assert r.exchangers[0].aaaa is not None and r.exchangers[0].aaaa.outcome is Outcome.SERVFAIL


@pytest.mark.parametrize(
    ("outcome", "records", "kind"),
    [
        (Outcome.NXDOMAIN, (), RouteKind.NXDOMAIN),
        (Outcome.SERVFAIL, (), RouteKind.FAILED),
        (Outcome.TIMEOUT, (), RouteKind.FAILED),
        (Outcome.NOERROR, ("0 .",), RouteKind.NULL_MX),
    ],
)
def test_terminal_mx_answers(outcome: Outcome, records: tuple[str, ...], kind: RouteKind) -> None:
    m = route.RouteMachine("example.com.")
    q = m.wanted()[0]
    m.give(q, lk(q, outcome, *records))
    assert m.done
    assert m.result().kind is kind


def test_no_mx_means_implicit_mx_on_the_domain() -> None:
    m = route.RouteMachine("example.com")
    q = m.wanted()[0]
    m.give(q, lk(q, Outcome.NODATA))
    assert set(m.wanted()) == {Question("example.com.", "A"), Question("example.com.", "AAAA")}
    for w in m.wanted():
        m.give(w, lk(w, Outcome.NODATA))
    r = m.result()
    assert r.kind is RouteKind.IMPLICIT and r.exchangers[0].implicit
    assert r.exchangers[0].addresses == ()


def test_null_mx_beside_other_mx_is_flagged_and_the_others_used() -> None:
    r = route.replay(
        "example.com",
        {
            Question("example.com.", "MX"): lk(Question("example.com.", "MX"), Outcome.NOERROR, "0 .", "10 mx."),
        },
    )
    assert r.null_mx_with_others
    assert r.kind is RouteKind.INCOMPLETE  # the A/AAAA answers were not recorded


def test_mx_target_written_as_an_address_is_marked_literal() -> None:
    m = route.RouteMachine("example.com")
    q = m.wanted()[0]
    m.give(q, lk(q, Outcome.NOERROR, "10 192.0.2.7."))
    for w in m.wanted():
        m.give(w, lk(w, Outcome.NXDOMAIN))
    assert m.result().exchangers[0].literal == "192.0.2.7"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("postmaster@example.com", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("user@Bücher.example.", "xn--bcher-kva.example"),
    ],
)
def test_targets_normalise(text: str, expected: str) -> None:
    assert route.normalise_target(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "a..b", "x" * 300 + ".com", "user@", "@example.com", "192.0.2.1", "[::1]", "exa\x07mple.com",
     "exa mple.com", "-bad.example", "com", ("a" * 64) + ".example"],
)
def test_bad_targets_raise_one_clear_error(text: str) -> None:
    with pytest.raises(InvalidTarget) as info:
        route.normalise_target(text)
    assert "\n" not in str(info.value)

"""Every classifier rule against a real error line; the comment names where the line was seen."""

from __future__ import annotations

import pytest

from mxdoctor.queues import classify
from mxdoctor.queues.classify import Category as C

# (rule, category, text, expected facts)
CASES = [
    # mta-behavior.md §1.3 [LOEBER] (Exchange 2010 queue viewer)
    ("exchange-dns-nonexistent", C.DNS_PERM,
     "451 4.4.0 dns query failed. The error was: SMTPsend.dns.nonexistentdomain; nonexistent",
     {"status": "451", "enhanced_status": "4.4.0"}),
    # mta-behavior.md §1.3 [MS-NDR]
    ("exchange-dns-nonexistent", C.DNS_PERM,
     "554 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain",
     {"status": "554", "enhanced_status": "5.4.4"}),
    # mta-behavior.md §1.3 [EXD] queued text (SmtpOutConnection.NextHopResolutionFailed), seen in [CIG]
    ("exchange-dns-failed", C.DNS_TEMP,
     "451 4.4.0 DNS query failed. The error was: DNS query failed with error ServerFailure",
     {"status": "451", "enhanced_status": "4.4.0", "detail": "ServerFailure"}),
    # mta-behavior.md §1.3 [KB3007623]
    ("exchange-dns-failed", C.DNS_TEMP,
     "451 4.4.0 DNS query failed. The error was: DNS query failed with error ErrorRetry",
     {"detail": "ErrorRetry"}),
    # mta-behavior.md §2.1 [MIAB] (mail-in-a-box issue 1607, Postfix log)
    ("postfix-dns-try-again", C.DNS_TEMP,
     "Host or domain name not found. Name service error for name=fontarboleas.es type=MX: "
     "Host not found, try again",
     {"host": "fontarboleas.es", "record_type": "MX"}),
    # mta-behavior.md §2.1 [NETDATA] (netdata issue 6853, Postfix mailq)
    ("postfix-dns-try-again", C.DNS_TEMP,
     "Host or domain name not found. Name service error for name=mx.example type=AAAA: "
     "Host not found, try again",
     {"host": "mx.example", "record_type": "AAAA"}),
    # mta-behavior.md §2.1 [MAILCOW] (mailcow issue 338, bounced with dsn=5.4.4)
    ("postfix-dns-not-found", C.DNS_PERM,
     "Host or domain name not found. Name service error for name=mail.example.net type=AAAA: Host not found",
     {"host": "mail.example.net", "record_type": "AAAA"}),
    # mta-behavior.md §2.1 [PF-strerror] dns_strerror.c texts in the dns_lookup.c message
    ("postfix-dns-malformed", C.DNS_TEMP,
     "Name service error for name=mx.example type=A: Malformed or unexpected name server reply",
     {"record_type": "A"}),
    ("postfix-dns-no-data", C.DNS_PERM,
     "Host or domain name not found. Name service error for name=mx.example type=A: "
     "Host found but no data record of requested type", {"host": "mx.example"}),
    ("postfix-dns-nonrecoverable", C.DNS_PERM,
     "Host or domain name not found. Name service error for name=mx.example type=MX: Non-recoverable error",
     {"record_type": "MX"}),
    # mta-behavior.md §2.1 [PF-addr] smtp_addr.c null MX text
    ("postfix-null-mx", C.DNS_PERM, "Domain example.com does not accept mail (nullMX)", {}),
    # mta-behavior.md §7.8 [MAILU-2135] (DANE deferrals)
    ("dane-tlsa-lookup", C.DNS_TEMP, "TLSA lookup error for mx.example.org:25", {}),
    # mta-behavior.md §3 [EX-testlog] (Exim test/log: dnslookup router defer)
    ("exim-lookup-incomplete", C.DNS_TEMP,
     "== user@dom R=dnslookup defer (-1): host lookup did not complete", {}),
    # mta-behavior.md §3 [EX-smtp] transports/smtp.c
    ("exim-lookups-temp", C.DNS_TEMP,
     "all host address lookups for 'stuck.example' failed temporarily", {"host": "stuck.example"}),
    ("exim-lookups-perm", C.DNS_PERM, "all relevant MX records point to non-existent hosts", {}),
    # mta-behavior.md §4 [SM deliver.c, err.c]
    ("sendmail-name-server", C.DNS_TEMP,
     "Deferred: Name server: mx.example.: host name lookup failure", {"host": "mx.example"}),
    # mta-behavior.md §4 [BH]; also a public sendmail -bp listing (tests/data/queues/sendmail-mailq.txt)
    ("sendmail-host-map", C.DNS_TEMP, "host map: lookup (163.com): deferred", {"host": "163.com"}),
    # Sendmail err.c for HOST_NOT_FOUND (the familiar bounce text)
    ("sendmail-unknown-host", C.DNS_PERM,
     "Host unknown (Name server: mx.gone.example: host not found)", {"host": "mx.gone.example"}),
    # mta-behavior.md §5 [OS mta.c]
    ("opensmtpd-mx-temp", C.DNS_TEMP, "Temporary failure in MX lookup", {}),
    ("opensmtpd-mx-temp", C.DNS_TEMP, "No MX found for domain", {}),
    ("opensmtpd-dns-perm", C.DNS_PERM, "Domain does not exist", {}),
    # Postfix smtp_proto.c smtp_site_fail(450, "Cannot start TLS: handshake failure"), as logged
    # with dsn=4.7.5 in public Postfix logs
    ("tls", C.TLS, "Cannot start TLS: handshake failure", {}),
    # Postfix smtp_proto.c when smtp_tls_security_level=encrypt meets a server without STARTTLS
    ("tls", C.TLS, "TLS is required, but was not offered by host mx.example.com[192.0.2.1]", {}),
    # Captured from this project's Postfix 3.7 test run (tests/data/queues/postfix-3.7-postqueue-j.jsonl)
    ("connect", C.CONNECT, "connect to 127.0.0.1[127.0.0.1]:1: Connection refused", {"host": "127.0.0.1"}),
    # Postfix connect failure as quoted in mxdoctor's brief and common Postfix logs
    ("connect", C.CONNECT, "connect to mx.example.com[192.0.2.1]:25: Connection timed out",
     {"host": "mx.example.com"}),
    # Public sendmail -bp listings (tests/data/queues/sendmail-mailq.txt)
    ("connect", C.CONNECT, "Deferred: Connection refused by lab2.campus.", {"host": "lab2.campus"}),
    # Real OpenSMTPD 6.8 smtpctl show queue error line (tests/data/queues/opensmtpd-6.8-show-queue.txt)
    ("connect", C.CONNECT, "Network error on destination MXs", {}),
    # Real Exim 4.96 mainlog line, recorded with tests/data/queues/exim-4.96-bp.txt
    ("connect", C.CONNECT,
     "== bob@stuck.example R=outbound T=remote_smtp defer (111): Connection refused", {}),
    # mta-behavior.md §3 [EX-smtp]
    ("connect", C.CONNECT, "retry time not reached for any host for 'stuck.example'", {}),
    # Exchange 2013+ SMTP send failure text
    ("connect", C.CONNECT,
     "451 4.4.397 Error communicating with target host. -> 421 4.4.2 Unable to connect "
     "-> SocketError: TimedOut",
     {"status": "451", "enhanced_status": "4.4.397"}),
    # Public Postfix log: host refused to talk to me (greeting) with 421 4.3.2
    ("greeting", C.GREETING,
     "host mx1-us1.ppe-hosted.com[67.231.154.163] refused to talk to me: "
     "421 4.3.2 All screening ports are busy",
     {"host": "mx1-us1.ppe-hosted.com", "status": "421", "enhanced_status": "4.3.2"}),
    ("greeting", C.GREETING, "421 4.3.2 Service not available", {"status": "421"}),
    # Postfix smtpd reject text as seen by the sending Postfix
    ("recipient", C.RECIPIENT,
     "host mx.example.com[192.0.2.1] said: 550 5.1.1 <bob@example.com>: Recipient address rejected: "
     "User unknown in virtual mailbox table (in reply to RCPT TO command)",
     {"status": "550", "enhanced_status": "5.1.1", "host": "mx.example.com"}),
    ("recipient", C.RECIPIENT, "550 5.1.1 User unknown", {"status": "550", "enhanced_status": "5.1.1"}),
    # Postfix smtpd RBL reject text as seen by senders
    ("policy", C.POLICY,
     "host mx.example.com[192.0.2.1] said: 554 5.7.1 Service unavailable; Client host [198.51.100.7] "
     "blocked using zen.spamhaus.org (in reply to RCPT TO command)",
     {"status": "554", "enhanced_status": "5.7.1"}),
]


@pytest.mark.parametrize(
    ("rule", "category", "text", "facts"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_rule(rule: str, category: C, text: str, facts: dict[str, str]) -> None:
    result = classify.classify(text)
    assert result.rule == rule
    assert result.category is category
    for key, value in facts.items():
        assert getattr(result, key) == value, key


def test_every_rule_has_a_case() -> None:
    covered = {c[0] for c in CASES}
    assert {r.name for r in classify.RULES} <= covered


def test_unmatched_falls_back_to_enhanced_status() -> None:
    assert classify.classify("451 4.7.0 Try again later").category is C.POLICY
    assert classify.classify("550 5.1.0 Sender rejected").category is C.RECIPIENT
    assert classify.classify("something odd happened").category is C.OTHER
    assert classify.classify(None) is classify.UNKNOWN
    assert classify.classify("   ").category is C.OTHER


def test_short_text_names_facts() -> None:
    d = classify.classify(CASES[5][2])
    assert d.short == "DNS lookup failed temporarily (SERVFAIL or timeout), type=AAAA, host=mx.example"
    assert d.category.is_dns

"""The deferral classifier: an MTA's last-error text -> a category and the facts it names.

One table of rules, tried in order, first match wins; each rule names the MTA text it recognises.
What a text names (host, record type, status code, enhanced status) is extracted by the same
patterns for every MTA. Results are cached: a queue repeats the same few texts many times.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass


class Category(enum.StrEnum):
    DNS_TEMP = "dns-temp"
    DNS_PERM = "dns-perm"
    CONNECT = "connect"
    TLS = "tls"
    GREETING = "greeting"
    RECIPIENT = "recipient"
    POLICY = "policy"
    OTHER = "other"

    @property
    def is_dns(self) -> bool:
        return self in (Category.DNS_TEMP, Category.DNS_PERM)


@dataclass(frozen=True)
class Rule:
    """``pattern`` decides; ``needles`` (lower-case substrings, one of which any match contains) only
    spare the regex on texts that cannot match, which keeps a million-message queue fast."""

    name: str
    category: Category
    pattern: re.Pattern[str]
    summary: str
    needles: tuple[str, ...]


def _rule(name: str, category: Category, pattern: str, summary: str, *needles: str) -> Rule:
    return Rule(name, category, re.compile(pattern, re.IGNORECASE), summary, needles)


C = Category
# Order matters: specific DNS texts first (they often carry 4.4.x codes shared with connection
# errors), then TLS (Exchange's 5.7.3 STARTTLS text would otherwise read as policy), connection,
# greeting, recipient, policy. Each rule's test line and its source are in tests/queues/test_classify.py.
RULES: tuple[Rule, ...] = (
    # Exchange (SmtpOutConnection / EnhancedDns texts)
    _rule("exchange-dns-nonexistent", C.DNS_PERM,
          r"SMTPSEND\.DNS\.(NonExistentDomain|MxLoopback|InvalidData)|DnsDomainDoesNotExist",
          "DNS says the domain does not exist (or loops, or is invalid)", "smtpsend.dns.", "dnsdomaindoesnotexist"),
    _rule("exchange-dns-failed", C.DNS_TEMP, r"DNS query failed",
          "DNS query failed", "dns query failed"),
    # Postfix dns_strerror texts after "Name service error for name=... type=...:"
    _rule("postfix-dns-try-again", C.DNS_TEMP, r"Host not found, try again",
          "DNS lookup failed temporarily (SERVFAIL or timeout)", "host not found, try again"),
    _rule("postfix-dns-malformed", C.DNS_TEMP, r"Malformed or unexpected name server reply",
          "malformed DNS reply", "malformed or unexpected name server reply"),
    _rule("postfix-dns-no-data", C.DNS_PERM, r"Host found but no data record of requested type",
          "no address record for the host", "host found but no data record"),
    _rule("postfix-dns-not-found", C.DNS_PERM, r"Name service error for name=.*: Host not found$"
          r"|Host or domain name not found\. Name service error for name=.*Host not found\s*$",
          "DNS name does not exist (NXDOMAIN)", "name service error"),
    _rule("postfix-dns-nonrecoverable", C.DNS_PERM, r"Name service error .*Non-recoverable error",
          "DNS lookup failed permanently", "non-recoverable error"),
    _rule("postfix-null-mx", C.DNS_PERM, r"does not accept mail \(nullMX\)",
          "the domain publishes a null MX", "(nullmx)"),
    _rule("dane-tlsa-lookup", C.DNS_TEMP, r"TLSA lookup error",
          "TLSA (DANE) lookup failed", "tlsa lookup error"),
    # Exim dnslookup router and smtp transport
    _rule("exim-lookup-incomplete", C.DNS_TEMP, r"host lookup did not complete",
          "DNS lookup did not complete", "host lookup did not complete"),
    _rule("exim-lookups-temp", C.DNS_TEMP, r"all host address lookups for .* failed temporarily",
          "all address lookups failed temporarily", "failed temporarily"),
    _rule("exim-lookups-perm", C.DNS_PERM, r"all host address lookups for .* failed permanently"
          r"|all relevant MX records point to non-existent hosts"
          r"|an MX or SRV record indicated no SMTP service",
          "MX hosts do not resolve", "failed permanently", "non-existent hosts", "no smtp service"),
    # Sendmail
    _rule("sendmail-name-server", C.DNS_TEMP, r"Name server: .*: host name lookup failure",
          "host name lookup failed", "host name lookup failure"),
    _rule("sendmail-host-map", C.DNS_TEMP, r"host map: lookup \(.*\): deferred|Transient parse error",
          "host map lookup deferred", "host map: lookup", "transient parse error"),
    _rule("sendmail-unknown-host", C.DNS_PERM, r"Host unknown \(Name server: .*: host not found\)",
          "host not found", "host unknown"),
    # OpenSMTPD mta.c
    _rule("opensmtpd-mx-temp", C.DNS_TEMP, r"Temporary failure in MX lookup|No MX found for domain",
          "MX lookup failed temporarily", "temporary failure in mx lookup", "no mx found for domain"),
    _rule("opensmtpd-dns-perm", C.DNS_PERM, r"^Domain does not exist$|^Invalid domain name$"
          r"|^Domain does not accept mail$",
          "DNS says the domain does not exist or accepts no mail",
          "domain does not exist", "invalid domain name", "domain does not accept mail"),
    # TLS
    _rule("tls", C.TLS, r"Cannot start TLS|TLS is required, but|STARTTLS is required|TLS session failed"
          r"|TLS negotiation failed|certificate verification failed|TLS handshake|SSL_connect error"
          r"|TLS error on connection",
          "TLS failed", "tls", "certificate", "ssl_connect"),
    # Connection
    _rule("connect", C.CONNECT, r"connect to .*: (Connection (timed out|refused)|No route to host"
          r"|Network is unreachable)|Connection (refused|timed out) (by|with) |Network error on destination"
          r"|Unable to connect|Failed to connect|SocketError|Winsock error|Connection reset by peer"
          r"|retry time not reached for any host|Network is unreachable|No route to host"
          r"|Connection (refused|timed out)\s*$",
          "cannot connect to the mail server",
          "connect", "connection", "network", "socketerror", "winsock", "no route to host", "retry time not reached"),
    # Greeting and session (the server answered but would not talk)
    _rule("greeting", C.GREETING, r"in reply to initial greeting|while receiving the initial server greeting"
          r"|refused to talk to me|^\s*421[ -]|\b421 4\.3\.2\b|Service not available",
          "server refused the session", "greeting", "refused to talk to me", "421", "service not available"),
    # Recipient
    _rule("recipient", C.RECIPIENT, r"\b5\.1\.[0-9]{1,2}\b|User unknown|No such user|mailbox unavailable"
          r"|Recipient address rejected|RecipientNotFound|mailbox (is )?full|over quota|\b[45]\.2\.2\b",
          "recipient rejected", "5.1.", "user unknown", "no such user", "mailbox", "recipient", "over quota", ".2.2"),
    # Policy
    _rule("policy", C.POLICY, r"\b[45]\.7\.[0-9]{1,3}\b|blocked|blacklist|blocklist|Relay access denied"
          r"|Client host rejected|greylist|Spamhaus|\bSPF\b|\bDMARC\b|rate limit|too many connections",
          "rejected by policy",
          ".7.", "block", "relay access denied", "client host rejected", "greylist", "spamhaus", "spf",
          "dmarc", "rate limit", "too many connections"),
)

_STATUS = re.compile(r"(?<![\d.])([245]\d\d)(?:[ -]|$)")
_ENHANCED = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
_HOST_PATTERNS = (
    re.compile(r"name=([^\s=]+)\s+type="),  # "=" excluded: one scan per "name=", not one per character
    re.compile(r"connect to ([^\s\[\]]+)\["),
    re.compile(r"host ([^\s\[\]]+)\[[^\]]*\] (?:said|refused)"),
    re.compile(r"Name server: (\S+?)\.?: "),
    re.compile(r"host map: lookup \((\S+?)\)"),
    re.compile(r"lookups for '([^']+)'"),
    re.compile(r"Connection (?:refused|timed out) (?:by|with) (\S+?)\.?$"),
    re.compile(r"lost connection with ([^\s\[\]]+)\["),
)
_TYPE = re.compile(r"type=([A-Z]+)\b")
_DNS_STATUS = (re.compile(r"with error (\w+)"), re.compile(r"The error was: ([\w.]+)"))


@dataclass(frozen=True)
class Deferral:
    """What a deferral text says: its category and the facts it names (None when it names none)."""

    category: Category
    summary: str
    rule: str | None = None
    host: str | None = None
    record_type: str | None = None
    status: str | None = None
    enhanced_status: str | None = None
    detail: str | None = None  # e.g. Exchange's DnsStatus ("ServerFailure")

    @property
    def short(self) -> str:
        """A one-line text for tables: category facts first."""
        bits = [self.summary]
        if self.record_type:
            bits.append(f"type={self.record_type}")
        if self.host:
            bits.append(f"host={self.host}")
        if self.detail:
            bits.append(self.detail)
        code = " ".join(c for c in (self.status, self.enhanced_status) if c)
        return (f"{code} " if code else "") + ", ".join(bits)


UNKNOWN = Deferral(Category.OTHER, "no reason given")


# Host names and IPv4 addresses vary per destination while the wording does not: rules are matched
# on the text with them replaced by "h", so a queue of 10,000 domains costs a few rule matches.
_HOSTISH = re.compile(r"(?<![\w.-])(?=[\w.-]*[a-z])[a-z0-9_-]+(?:\.[a-z0-9_-]+)+\.?|\d{1,3}(?:\.\d{1,3}){3}")


def skeleton(text: str) -> str:
    """The wording of an error text, host names and addresses replaced (the key of ``kind``)."""
    return _HOSTISH.sub("h", text.strip())


@functools.lru_cache(maxsize=16384)
def kind(skel: str) -> tuple[Category, str | None]:
    """Category and rule name of an error text's skeleton: the cheap half of ``classify``."""
    if not skel:
        return Category.OTHER, None
    low = skel.lower()
    for rule in RULES:
        if any(n in low for n in rule.needles) and rule.pattern.search(skel):
            return rule.category, rule.name
    enhanced = _ENHANCED.search(skel)
    return _by_code(enhanced.group(1) if enhanced else None), None


_BY_NAME = {r.name: r for r in RULES}


@functools.lru_cache(maxsize=4096)
def classify(text: str | None) -> Deferral:
    """Classify one MTA error text; an empty text is ``UNKNOWN`` (category other)."""
    if not text or not text.strip():
        return UNKNOWN
    text = text.strip()
    status = _STATUS.search(text)
    enhanced = _ENHANCED.search(text)
    host = next((m.group(1) for p in _HOST_PATTERNS if (m := p.search(text))), None)
    rtype = _TYPE.search(text)
    detail = None
    if "DNS" in text:
        # Exchange's DnsStatus ("ServerFailure") or SMTPSEND code, innermost first.
        dns = next((m for p in _DNS_STATUS if (m := p.search(text))), None)
        if dns:
            detail = dns.group(1).rstrip(".;")
    category, name = kind(skeleton(text))
    summary = _BY_NAME[name].summary if name else "other error"
    return Deferral(
        category, summary, name,
        host=host.rstrip(".").lower() if host else None,
        record_type=rtype.group(1) if rtype else None,
        status=status.group(1) if status else None,
        enhanced_status=enhanced.group(1) if enhanced else None,
        detail=detail,
    )


def _by_code(enhanced: str | None) -> Category:
    # RFC 3463 subjects when no text rule matched: X.1 addressing, X.7 security/policy, X.4.4 routing.
    if enhanced is None:
        return Category.OTHER
    subject = enhanced.split(".")[1:]
    if subject[0] == "1":
        return Category.RECIPIENT
    if subject[0] == "7":
        return Category.POLICY
    if subject == ["4", "4"] or subject == ["4", "3"]:
        return Category.DNS_PERM if enhanced.startswith("5") else Category.DNS_TEMP
    return Category.OTHER

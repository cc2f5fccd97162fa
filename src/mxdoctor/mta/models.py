"""What each MTA does with each DNS answer, as data: one MtaModel per MTA, with its knobs and its
sources. A new MTA is one entry here; every list of MTA names (CLI choices, scenario verdicts, the
docs) derives from ``MODELS``. ``inferred`` marks what is reasoned from sources rather than read in
code or observed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace


class Failure(enum.StrEnum):
    """Classes of failed address lookups, as MTAs tell them apart."""

    SERVFAIL = "servfail"  # SERVFAIL from the resolver (TRY_AGAIN)
    TIMEOUT = "timeout"  # no answer, network error
    OTHER = "other"  # REFUSED, FORMERR, NOTIMP, broken or malformed answers


class OnFailure(enum.StrEnum):
    """What a failed lookup of one address family does."""

    NEXT_FAMILY = "next-family"  # ignore it; the host is usable if the other family gives addresses
    HOST_TEMPFAIL = "host-tempfail"  # this exchanger is skipped as temporarily failed
    DOMAIN_DEFER = "domain-defer"  # the whole next-hop resolution fails: the domain defers


class OnNxdomain(enum.StrEnum):
    NEXT_FAMILY = "next-family"  # NXDOMAIN for AAAA: query A anyway
    HOST_UNUSABLE = "host-unusable"  # NXDOMAIN for AAAA: the host is taken to have no address


@dataclass(frozen=True)
class Texts:
    """Status and text the MTA logs, with {domain}, {host}, {qtype}, {error}, {address} filled in; {name} is
    the exchanger as the MTA writes it: an MX target absolute (trailing dot), the implicit MX bare."""

    mx_tempfail: str
    nxdomain: str
    null_mx: str
    no_address: str  # every exchanger answered, none has an address
    address_tempfail: str  # no usable exchanger, at least one temporary failure
    domain_defer: str  # an address-lookup failure that fails the whole resolution (DOMAIN_DEFER)
    host_nxdomain: str = ""  # the exchanger's name does not exist (NXDOMAIN); empty: as no_address
    implicit_no_address: str = ""  # no MX and the domain itself has no address; empty: as no_address
    deliver: str = "delivers to {host} [{address}]"
    unreachable: str = "connect to {host}[{address}]:25: Connection refused"
    # With DANE on (a knob): the TLSA lookup of {host} failed, or no TLSA record matches its certificate.
    dane_lookup_error: str = "TLSA lookup error for {host}:25"
    dane_no_match: str = "server certificate of {host} matches no TLSA record"
    # With DANE on, where the certificate matches a validated TLSA record.
    dane_deliver: str = "delivers to {host} [{address}] over DANE-verified TLS"
    # With DANE required (a knob): the exchanger's address is not DNSSEC-secure, or it has no TLSA records.
    dane_insecure: str = "DANE required, but the address of {host} is not DNSSEC-secure"
    dane_no_tlsa: str = "DANE required, but {host} has no TLSA records"


@dataclass(frozen=True)
class Knob:
    """A setting that changes an outcome, with the exact way to set it."""

    name: str
    description: str
    how: str  # the exact command or configuration line
    effect: dict[str, object] = field(default_factory=dict)  # MtaModel fields it overrides


@dataclass(frozen=True)
class Source:
    """Where a modelled behaviour comes from: a key the docs cite, and the source in words."""

    key: str
    text: str


@dataclass(frozen=True)
class MtaModel:
    name: str
    title: str
    order: tuple[str, ...]  # address query order per exchanger, e.g. ("AAAA", "A")
    on_aaaa_failure: dict[Failure, OnFailure]
    on_a_failure: dict[Failure, OnFailure]
    on_aaaa_nxdomain: OnNxdomain
    texts: Texts
    knobs: tuple[Knob, ...] = ()
    uses_external_view: bool = False  # set by a knob: resolution goes through the external resolvers
    no_address_defers: bool = False  # every exchanger answered without an address: defer, not bounce
    null_mx_supported: bool = True  # False: "MX 0 ." is just an exchanger "." without an address
    dane: bool = False  # set by a knob: DANE for SMTP (RFC 7672) where the exchanger's zone is signed
    dane_required: bool = False  # DANE or nothing: an exchanger without secure TLSA records is refused
    mx_literal: bool = False  # an MX target written as an address ("MX 10 192.0.2.25.") is used as one
    # AAAA asked first and its addresses connected to before A is asked: A only when AAAA gave no address
    # or every IPv6 connect failed, so a failing A query does not matter while IPv6 delivers
    a_after_v6_connect: bool = False
    # both address lookups failed alike: the error logged names the last type asked, not the first
    last_failure_named: bool = False
    own_dns_wait: str = ""  # the limits of the MTA's own DNS client, in words; empty: the host's stub resolver
    sources: tuple[Source, ...] = ()
    notes: tuple[str, ...] = ()  # behaviours that are inferred, not confirmed

    def with_knobs(self, names: tuple[str, ...]) -> MtaModel:
        model = self
        for knob in self.knobs:
            if knob.name in names:
                model = replace(model, **knob.effect)  # type: ignore[arg-type]
        return model

    def knob(self, name: str) -> Knob | None:
        return next((k for k in self.knobs if k.name == name), None)


_MS_SENS = Source(
    "MS-SENS",
    "Exchange 'DNS query failure sensitivity' (DnsFaultTolerance Lenient/Normal, 5 s per server, "
    "1 min per query), technet Bb676467",
)
_MS_PS = Source(
    "MS-PS",
    "Exchange PowerShell reference: Set-SendConnector (UseExternalDNSServersEnabled, "
    "ErrorPolicies), Set-TransportServer / Set-TransportService (ExternalDNSAdapterEnabled, "
    "ExternalDNSServers), Get-Queue, Retry-Queue, Get-Message",
)
_CONFORMANCE = Source(
    "CONFORMANCE",
    "mxdoctor's conformance run: the real Postfix 3.7, Exim 4.96, OpenSMTPD 6.8.0p2 and Sendmail "
    "8.17 (Debian 12) against the lab scenarios, outcomes and texts as logged "
    "(docs/conformance.md)",
)

_ALL_NEXT = {f: OnFailure.NEXT_FAMILY for f in Failure}
_ALL_HOST = {f: OnFailure.HOST_TEMPFAIL for f in Failure}
_ALL_DOMAIN = {f: OnFailure.DOMAIN_DEFER for f in Failure}

_EXCHANGE_EXTERNAL = Knob(
    "UseExternalDNSServersEnabled",
    "Send connector uses the external DNS list; with DnsFaultTolerance=Lenient (the default) a failed "
    "AAAA sub-query falls through to A (KB 972744's resolution)",
    "Set-SendConnector -Identity '<internet send connector>' -UseExternalDNSServersEnabled $true; "
    "Restart-Service MSExchangeTransport",
    {
        "on_aaaa_failure": _ALL_NEXT,
        "on_a_failure": _ALL_HOST,
        "uses_external_view": True,
    },
)


def _fault_tolerance_normal(aaaa: dict[Failure, OnFailure], a: dict[Failure, OnFailure]) -> Knob:
    # Normal tolerance takes the failure handling back to the internal path's, even with external DNS.
    return Knob(
        "DnsFaultTolerance=Normal",
        "EdgeTransport.exe.config DnsFaultTolerance=Normal: external DNS lookups are no longer fault "
        "tolerant, so a failed AAAA sub-query fails the lookup as on the internal path",
        '<add key="DnsFaultTolerance" value="Normal" /> in %ExchangeInstallPath%Bin\\EdgeTransport.exe.config '
        "(appSettings); Restart-Service MSExchangeTransport",
        {"on_aaaa_failure": aaaa, "on_a_failure": a},
    )


# Exchange's own DNS client, not the Windows stub [MS-SENS]
_EXCHANGE_WAIT = "5 s for each DNS server, at most 1 min for one query (Exchange's own DNS client)"
_EXCHANGE_TEXTS = Texts(
    mx_tempfail="451 4.4.0 DNS query failed. The error was: DNS query failed with error {error}",
    nxdomain="554 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain",
    null_mx="554 5.4.4 SMTPSEND.DNS.InvalidData; DNS returned an invalid response for this domain",
    no_address="554 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain",
    address_tempfail="451 4.4.0 DNS query failed. The error was: DNS query failed with error {error}",
    domain_defer="451 4.4.0 DNS query failed. The error was: DNS query failed with error {error}",
    unreachable="451 4.4.0 Primary target IP address responded with: \"421 4.2.1 Unable to connect.\"",
)

EXCHANGE2010 = MtaModel(
    name="exchange2010",
    title="Exchange 2007/2010 (internal DNS path)",
    order=("AAAA", "A"),
    on_aaaa_failure=_ALL_DOMAIN,
    on_a_failure=_ALL_DOMAIN,
    on_aaaa_nxdomain=OnNxdomain.HOST_UNUSABLE,
    texts=_EXCHANGE_TEXTS,
    own_dns_wait=_EXCHANGE_WAIT,
    knobs=(_EXCHANGE_EXTERNAL, _fault_tolerance_normal(_ALL_DOMAIN, _ALL_DOMAIN)),
    sources=(
        Source(
            "KB972744",
            "Microsoft KB 972744, Exchange 2007/2010 queues mail with '451 4.4.0 DNS query failed' when a "
            "DNS server ignores AAAA queries or answers them unexpectedly; resolution: send connector "
            "'Use External DNS Lookup' (https://support.microsoft.com/help/972744)",
        ),
        Source(
            "WF",
            "Field report, SBS 2011 / Exchange 2010 SP1 holding one domain with 451 4.4.0 because of AAAA "
            "SERVFAIL (wfcastle33.wordpress.com/2011/06/26/exchangednserror451/)",
        ),
        Source(
            "CIG",
            "Observed Exchange 2010 Edge texts '...DNS query failed with error ServerFailure' and '...The "
            "error was: ErrorTimeout' (kx.cloudingenium.com)",
        ),
        _MS_SENS,
        _MS_PS,
    ),
    notes=(
        "AAAA asked first and any AAAA failure defers the whole domain: from KB 972744 and field "
        "reports; 2010 code was not read (inferred).",
        "A failure of the A query is modelled like the AAAA one (inferred).",
        "AAAA NXDOMAIN makes the host unusable: read in 15.x code, assumed for 2010 (inferred).",
        "Null MX (RFC 7505) post-dates 2010: the bounce text is inferred.",
    ),
)
_EXCHANGE2013_AAAA = {
    Failure.SERVFAIL: OnFailure.NEXT_FAMILY,
    Failure.TIMEOUT: OnFailure.DOMAIN_DEFER,
    Failure.OTHER: OnFailure.DOMAIN_DEFER,
}
EXCHANGE2013 = MtaModel(
    name="exchange2013",
    title="Exchange 2013/2016/2019",
    order=("AAAA", "A"),
    on_aaaa_failure=_EXCHANGE2013_AAAA,
    on_a_failure=_ALL_HOST,
    on_aaaa_nxdomain=OnNxdomain.HOST_UNUSABLE,
    texts=_EXCHANGE_TEXTS,
    own_dns_wait=_EXCHANGE_WAIT,
    knobs=(_EXCHANGE_EXTERNAL, _fault_tolerance_normal(_EXCHANGE2013_AAAA, _ALL_HOST)),
    sources=(
        Source(
            "EXD",
            "Exchange 15.x transport as published in unofficial decompiled trees (MxRequest.cs, "
            "Request.cs, DnsStatus.cs, EnhancedDns): AAAA then A; ServerFailure on AAAA ignored; "
            "ErrorTimeout fails the request unless FailureTolerant (external DNS + Lenient)",
        ),
        _MS_SENS,
        _MS_PS,
        Source("MS-NDR", "Exchange DSN/NDR table: 5.4.4 SMTPSEND.DNS.NonExistentDomain"),
    ),
    notes=(
        "SERVFAIL on AAAA is ignored and A queried (MxRequest.HandleServerFailure, decompiled 15.x code).",
        "A timeout on the internal path ends the request with ErrorTimeout (decompiled code).",
        "REFUSED/FORMERR/broken AAAA answers fail the request (inferred: only ServerFailure is excused).",
        "AAAA NXDOMAIN taken as success without an A query (reading of decompiled code, unconfirmed).",
        "An MX target written as an address is asked as a host name, which does not exist (inferred).",
    ),
)
POSTFIX = MtaModel(
    name="postfix",
    title="Postfix (inet_protocols = all)",
    order=("A", "AAAA"),
    last_failure_named=True,
    on_aaaa_failure=_ALL_NEXT,
    on_a_failure=_ALL_NEXT,
    on_aaaa_nxdomain=OnNxdomain.NEXT_FAMILY,
    mx_literal=True,
    texts=Texts(
        mx_tempfail="4.4.3 Host or domain name not found. Name service error for name={domain} type=MX: "
        "Host not found, try again",
        nxdomain="5.4.4 Host or domain name not found. Name service error for name={domain} type={qtype}: "
        "Host not found",
        null_mx="5.1.0 Domain {domain} does not accept mail (nullMX)",
        no_address="5.4.4 Host or domain name not found. Name service error for name={host} type={qtype}: "
        "Host found but no data record of requested type",
        host_nxdomain="5.4.4 Host or domain name not found. Name service error for name={host} type={qtype}: "
        "Host not found",
        address_tempfail="4.4.3 Host or domain name not found. Name service error for name={host} "
        "type={qtype}: Host not found, try again",
        domain_defer="4.4.3 Host or domain name not found. Name service error for name={host} "
        "type={qtype}: Host not found, try again",
        unreachable="4.4.1 connect to {host}[{address}]:25: Connection refused",
        dane_lookup_error="4.7.5 TLSA lookup error for {host}:25",
        dane_no_match="4.7.5 Server certificate not verified",
        dane_deliver="delivers to {host} [{address}]: Verified TLS connection established",
    ),
    knobs=(
        Knob(
            "inet_protocols=ipv4",
            "Postfix asks only A records (AAAA never asked)",
            "postconf -e inet_protocols=ipv4 && postfix reload",
            {"order": ("A",)},
        ),
        Knob(
            "smtp_tls_security_level=dane",
            "Opportunistic DANE (RFC 7672): where the exchanger's zone is signed and publishes TLSA records, "
            "the certificate must match one; a failed TLSA lookup defers the exchanger",
            "postconf -e 'smtp_dns_support_level = dnssec' 'smtp_tls_security_level = dane' && postfix reload",
            {"dane": True},
        ),
    ),
    sources=(
        Source(
            "PF-addr",
            "Postfix src/smtp/smtp_addr.c: 'As long as we are able to look up any host address, we ignore "
            "problems with DNS lookups'; 4.4.3 for soft errors, 5.4.4 for not found",
        ),
        Source(
            "PF-types",
            "Postfix src/dns/dns_lookup_types.c and dns.h: every type queried, highest-priority status "
            "wins",
        ),
        Source("PF-28", "Postfix 2.8 dns_lookup_v(): non_err ? DNS_OK : soft_err ? DNS_RETRY : status"),
        Source(
            "PF-lookup",
            "Postfix src/dns/dns_lookup.c: 'Host or domain name not found. Name service error for name=%s "
            "type=%s: %s'",
        ),
        Source("PF-strerror", "Postfix src/dns/dns_strerror.c: 'Host not found, try again' for TRY_AGAIN"),
        Source("PF-inet", "Postfix src/util/inet_proto.c: inet_protocols=ipv4 asks A only"),
        _CONFORMANCE,
    ),
    notes=("Any address found wins: 'As long as we are able to look up any host address, we ignore "
           "problems with DNS lookups' (smtp_addr.c).",
           "An MX target written as an address is used as that address: smtp_addr_one() 'Interpret a "
           "numerical name as an address' (smtp_addr.c); dns_lookup.c only logs 'numeric domain name'.",
           "An exchanger whose name does not exist bounces 'dsn=5.4.4 ... name=<host> type=AAAA: Host not "
           "found'; a refused connection defers 'dsn=4.4.1 ... connect to <host>[<address>]:25: Connection "
           "refused' (observed with 3.7, docs/conformance.md).",
           "DANE (smtp_tls_security_level = dane, behind a validating resolver whose AD bit glibc passes on "
           "with 'options trust-ad'): a secure TLSA record matching no certificate defers with '4.7.5 Server "
           "certificate not verified', a failed TLSA lookup with '4.7.5 TLSA lookup error for HOST:25'; an "
           "exchanger in an unsigned zone gets opportunistic TLS (observed with 3.7, docs/conformance.md).",),
)
EXIM = MtaModel(
    name="exim",
    title="Exim 4 (IPv6 build)",
    order=("AAAA", "A"),
    on_aaaa_failure=_ALL_NEXT,
    on_a_failure=_ALL_NEXT,
    on_aaaa_nxdomain=OnNxdomain.HOST_UNUSABLE,
    # hosts_try_dane is * by default (observed with 4.96 behind a validating resolver, docs/conformance.md).
    dane=True,
    texts=Texts(
        mx_tempfail="R=dnslookup defer (-1): host lookup did not complete",
        nxdomain="Unrouteable address",
        null_mx="an MX or SRV record indicated no SMTP service",
        no_address="all relevant MX records point to non-existent hosts",
        implicit_no_address="Unrouteable address",
        address_tempfail="R=dnslookup defer (-1): host lookup did not complete",
        domain_defer="R=dnslookup defer (-1): host lookup did not complete",
        unreachable="T=remote_smtp defer (111): Connection refused",
        dane_lookup_error="T=remote_smtp defer (-36): DANE error: tlsa lookup DEFER",
        dane_no_match="T=remote_smtp defer (-37) H={host} [{address}]: TLS session: (certificate verification failed): "
        "Verification failed. The certificate differs.",
        dane_deliver="delivers to {host} [{address}] CV=dane",
        dane_insecure="T=remote_smtp: DANE error: {host} lookup not DNSSEC",
        dane_no_tlsa="T=remote_smtp: DANE error: tlsa lookup FAIL",
    ),
    knobs=(
        Knob(
            "dns_ipv4_lookup=*",
            "Exim asks only A records for matching domains",
            "dns_ipv4_lookup = *   (main configuration; or disable_ipv6 = true)",
            {"order": ("A",)},
        ),
        Knob(
            "hosts_try_dane=",
            "Exim without DANE: an empty hosts_try_dane turns off the DANE it does by default",
            "in the smtp transport: hosts_try_dane =   (empty; or exempt one host: hosts_try_dane = !HOST : *)",
            {"dane": False},
        ),
        Knob(
            "hosts_require_dane=*",
            "DANE required (RFC 7672): an exchanger whose address is not DNSSEC-secure or that has no TLSA "
            "records fails at once; a failed TLSA lookup or a certificate that matches no TLSA record defers it",
            "in the smtp transport: hosts_require_dane = *",
            {"dane": True, "dane_required": True},
        ),
    ),
    sources=(
        Source(
            "EX-host",
            "Exim src/src/host.c set_address_from_dns(): AAAA then A; 'We want to return HOST_FIND_AGAIN "
            "if one of the A or AAAA lookups fails or times out, but not if another one succeeds'",
        ),
        Source("EX-dns", "Exim src/src/dns.c: TRY_AGAIN maps to DNS_AGAIN"),
        Source(
            "EX-router",
            "Exim src/src/routers/dnslookup.c: 'host lookup did not complete', 'an MX or SRV record "
            "indicated no SMTP service', 'all relevant MX records point to non-existent hosts'",
        ),
        Source("EX-spec", "Exim specification: dns_ipv4_lookup, disable_ipv6, dns_again_means_nonexist"),
        Source(
            "EX-testlog",
            "Exim test suite logs: '== user@dom R=dnslookup defer (-1): host lookup did not complete'",
        ),
        _CONFORMANCE,
    ),
    notes=("'We want to return HOST_FIND_AGAIN if one of the A or AAAA lookups fails or times out, but "
           "not if another one succeeds' (host.c).",
           "AAAA NXDOMAIN: Exim asks A next, but a caching resolver answers it from the NXDOMAIN it just "
           "cached for the name (RFC 2308 §5), so the host has no address and the message bounces "
           "(observed with Exim 4.96 against the lab, docs/conformance.md).",
           "Routing failures are logged '** <address>: <text>' without R=; the texts are the observed "
           "4.96 ones (docs/conformance.md).",
           "An MX target written as an address is refused (allow_mx_to_ip is false by default): 'all "
           "relevant MX records point to non-existent hosts or (invalidly) to IP addresses' (observed).",
           "A domain without MX whose own name has no address is 'Unrouteable address': the dnslookup router "
           "declines it (observed with 4.96, docs/conformance.md).",
           "DANE by default (hosts_try_dane = *, dnssec_request_domains = *): behind a validating resolver "
           "(AD passed on with 'options trust-ad') a secure TLSA record that matches no certificate or a "
           "failed TLSA lookup defers the host; an unsigned exchanger gets plain TLS. With hosts_require_dane "
           "= * an exchanger whose address is not DNSSEC-secure, or that has no TLSA records, fails at once "
           "('DANE error: HOST lookup not DNSSEC', 'DANE error: tlsa lookup FAIL'; observed with 4.96, "
           "docs/conformance.md).",),
)
SENDMAIL = MtaModel(
    name="sendmail",
    title="Sendmail 8 (NETINET6, IPv6 socket available)",
    order=("AAAA", "A"),
    on_aaaa_failure={
        Failure.SERVFAIL: OnFailure.HOST_TEMPFAIL,
        Failure.TIMEOUT: OnFailure.HOST_TEMPFAIL,
        Failure.OTHER: OnFailure.NEXT_FAMILY,
    },
    on_a_failure=_ALL_HOST,
    on_aaaa_nxdomain=OnNxdomain.HOST_UNUSABLE,
    mx_literal=True,
    a_after_v6_connect=True,
    texts=Texts(
        mx_tempfail="4.4.3 host map: lookup ({domain}): deferred",
        nxdomain="5.1.2 Host unknown (Name server: {domain}: host not found)",
        null_mx="5.1.10 Service unavailable",
        no_address="5.1.2 Host unknown (Name server: {name}: no data known)",
        host_nxdomain="5.1.2 Host unknown (Name server: {name}: host not found)",
        address_tempfail="4.4.3 Deferred: Name server: {name}: host name lookup failure",
        domain_defer="4.4.3 Deferred: Name server: {name}: host name lookup failure",
        unreachable="4.4.1 Deferred: Connection refused by {name}",
    ),
    knobs=(
        Knob(
            "WorkAroundBrokenAAAA",
            "Excuse a SERVFAIL/timeout on AAAA and fall back to A",
            "define(`confBIND_OPTS', `WorkAroundBrokenAAAA')   (sendmail.mc; "
            "or O ResolverOptions=+WorkAroundBrokenAAAA in sendmail.cf)",
            {"on_aaaa_failure": _ALL_NEXT},
        ),
    ),
    sources=(
        Source(
            "SM",
            "Sendmail 8.1x sources (conf.c, daemon.c, deliver.c, domain.c): AAAA then A per MX host; "
            "TRY_AGAIN or ETIMEDOUT on AAAA tempfails the host (4.4.3) unless WorkAroundBrokenAAAA; "
            "'Deferred: Name server: <host>: host name lookup failure'",
        ),
        Source(
            "SM-daemon",
            "Sendmail 8.1x daemon.c makeconnection(): family = InetMode (AF_INET6) first, 'Try v6 first, then "
            "fall back to v4'; the AF_INET lookup (v4retry) runs only when the AAAA lookup gave no address or "
            "every IPv6 connect failed ('Connect failed ...; retrying with AF_INET')",
        ),
        Source("FS-bsd", "OpenBSD/MirOS/FreeBSD .mc files with define(`confBIND_OPTS', `WorkAroundBrokenAAAA')"),
        Source("BH", "Field report: sendmail 'host map: lookup (domain): deferred' on AAAA SERVFAIL"),
        _CONFORMANCE,
    ),
    notes=(
        "REFUSED/broken AAAA answers map to NO_RECOVERY in the resolver library and fall back to A "
        "(inferred).",
        "Null MX: 8.17 bounces with 'dsn=5.1.10, stat=Service unavailable' (observed, docs/conformance.md).",
        "MX SERVFAIL: with the default canonification the recipient domain's host-map lookup fails first; "
        "the message is queued 'dsn=4.4.3, stat=queued' and mailq shows '(host map: lookup (<domain>): "
        "deferred)' (observed).",
        "AAAA NXDOMAIN: the A query that follows is answered from the resolver's cached NXDOMAIN (RFC 2308 "
        "§5): 'Host unknown (Name server: <host>.: host not found)', 5.1.2 (observed); a host without any "
        "address gives '... no data known'.",
        "An MX target written as an address is used as that address: 8.17 delivers to 'relay=127.0.0.25. "
        "[127.0.0.25]' (observed, docs/conformance.md).",
        "A is asked only when AAAA gave no address or every IPv6 connect failed (makeconnection()): with A "
        "answering SERVFAIL and an IPv6 address that accepts, 8.17 delivers over IPv6 (observed, "
        "docs/conformance.md).",
    ),
)
OPENSMTPD = MtaModel(
    name="opensmtpd",
    title="OpenSMTPD (portable, bundled libasr)",
    order=("AAAA", "A"),
    on_aaaa_failure=_ALL_NEXT,
    on_a_failure=_ALL_NEXT,
    on_aaaa_nxdomain=OnNxdomain.HOST_UNUSABLE,
    texts=Texts(
        mx_tempfail="TempFail: Temporary failure in MX lookup",
        nxdomain="PermFail: Domain does not exist",
        null_mx="PermFail: Domain does not accept mail",
        no_address="TempFail: No MX found for domain",
        address_tempfail="TempFail: No MX found for domain",
        domain_defer="TempFail: No MX found for domain",
        unreachable="TempFail: Network error on destination MXs",
    ),
    no_address_defers=True,
    mx_literal=True,
    knobs=(
        Knob(
            "release<7",
            "OpenSMTPD before 7.0 (Debian 12 ships 6.8.0p2) predates null MX (RFC 7505): 'MX 0 .' is taken "
            "for an exchanger without an address, a temporary failure",
            "the installed release: smtpd -h (upgrade to OpenSMTPD 7.x for null MX support)",
            {"null_mx_supported": False},
        ),
    ),
    sources=(
        Source(
            "OS",
            "OpenSMTPD 7.8.0p1 (dns.c, mta.c, libasr getaddrinfo_async.c): AAAA then A as separate "
            "sub-queries; a failed family is skipped if any address is found; no address: TempFail",
        ),
        _CONFORMANCE,
    ),
    notes=("No address at all is a temporary failure (DNS_ENOTFOUND → TempFail) in mta.c.",
           "An MX target written as an address is used as that address: libasr's getaddrinfo tries the "
           "name as a numeric host first (getaddrinfo_async.c).",
           "AAAA NXDOMAIN: the A sub-query is answered from the resolver's cached NXDOMAIN (RFC 2308 §5), "
           "so no address is found: TempFail 'No MX found for domain' (observed with 6.8.0p2, "
           "docs/conformance.md).",
           "Null MX: the bounce is read in 7.8 code; Debian 12's 6.8.0p2 predates it and defers with "
           "'No MX found for domain' (observed).",
           "Every exchanger refusing the connection: TempFail 'Network error on destination MXs' (observed with "
           "6.8.0p2, docs/conformance.md).",),
)

MODELS: dict[str, MtaModel] = {
    m.name: m for m in (EXCHANGE2010, EXCHANGE2013, POSTFIX, EXIM, SENDMAIL, OPENSMTPD)
}


def sources() -> dict[str, str]:
    """Every source the models cite, key -> text, in the order the models first cite them."""
    out: dict[str, str] = {}
    for m in MODELS.values():
        for src in m.sources:
            if out.setdefault(src.key, src.text) != src.text:
                raise ValueError(f"source {src.key} is cited with two different texts")
    return out

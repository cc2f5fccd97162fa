"""Where each modelled behaviour comes from: the source keys cited by the MTA models."""

from __future__ import annotations

SOURCES: dict[str, str] = {
    "KB972744": "Microsoft KB 972744, Exchange 2007/2010 queues mail with '451 4.4.0 DNS query failed' when a "
    "DNS server ignores AAAA queries or answers them unexpectedly; resolution: send connector "
    "'Use External DNS Lookup' (https://support.microsoft.com/help/972744)",
    "WF": "Field report, SBS 2011 / Exchange 2010 SP1 holding one domain with 451 4.4.0 because of AAAA "
    "SERVFAIL (wfcastle33.wordpress.com/2011/06/26/exchangednserror451/)",
    "CIG": "Observed Exchange 2010 Edge texts '...DNS query failed with error ServerFailure' and "
    "'...The error was: ErrorTimeout' (kx.cloudingenium.com)",
    "MS-SENS": "Exchange 'DNS query failure sensitivity' (DnsFaultTolerance Lenient/Normal, 5 s per server, "
    "1 min per query), technet Bb676467",
    "MS-PS": "Exchange PowerShell reference: Set-SendConnector (UseExternalDNSServersEnabled, ErrorPolicies), "
    "Set-TransportServer / Set-TransportService (ExternalDNSAdapterEnabled, ExternalDNSServers), "
    "Get-Queue, Retry-Queue, Get-Message",
    "MS-NDR": "Exchange DSN/NDR table: 5.4.4 SMTPSEND.DNS.NonExistentDomain",
    "EXD": "Exchange 15.x transport as published in unofficial decompiled trees (MxRequest.cs, Request.cs, "
    "DnsStatus.cs, EnhancedDns): AAAA then A; ServerFailure on AAAA ignored; ErrorTimeout fails the "
    "request unless FailureTolerant (external DNS + Lenient)",
    "PF-addr": "Postfix src/smtp/smtp_addr.c: 'As long as we are able to look up any host address, we ignore "
    "problems with DNS lookups'; 4.4.3 for soft errors, 5.4.4 for not found",
    "PF-types": "Postfix src/dns/dns_lookup_types.c and dns.h: every type queried, highest-priority status wins",
    "PF-28": "Postfix 2.8 dns_lookup_v(): non_err ? DNS_OK : soft_err ? DNS_RETRY : status",
    "PF-lookup": "Postfix src/dns/dns_lookup.c: 'Host or domain name not found. Name service error for "
    "name=%s type=%s: %s'",
    "PF-strerror": "Postfix src/dns/dns_strerror.c: 'Host not found, try again' for TRY_AGAIN",
    "PF-inet": "Postfix src/util/inet_proto.c: inet_protocols=ipv4 asks A only",
    "EX-host": "Exim src/src/host.c set_address_from_dns(): AAAA then A; 'We want to return HOST_FIND_AGAIN "
    "if one of the A or AAAA lookups fails or times out, but not if another one succeeds'",
    "EX-dns": "Exim src/src/dns.c: TRY_AGAIN maps to DNS_AGAIN",
    "EX-router": "Exim src/src/routers/dnslookup.c: 'host lookup did not complete', 'an MX or SRV record "
    "indicated no SMTP service', 'all relevant MX records point to non-existent hosts'",
    "EX-spec": "Exim specification: dns_ipv4_lookup, disable_ipv6, dns_again_means_nonexist",
    "EX-testlog": "Exim test suite logs: '== user@dom R=dnslookup defer (-1): host lookup did not complete'",
    "SM": "Sendmail 8.1x sources (conf.c, daemon.c, deliver.c, domain.c): AAAA then A per MX host; TRY_AGAIN "
    "or ETIMEDOUT on AAAA tempfails the host (4.4.3) unless WorkAroundBrokenAAAA; 'Deferred: Name server: "
    "<host>: host name lookup failure'",
    "FS-bsd": "OpenBSD/MirOS/FreeBSD .mc files with define(`confBIND_OPTS', `WorkAroundBrokenAAAA')",
    "BH": "Field report: sendmail 'host map: lookup (domain): deferred' on AAAA SERVFAIL",
    "OS": "OpenSMTPD 7.8.0p1 (dns.c, mta.c, libasr getaddrinfo_async.c): AAAA then A as separate "
    "sub-queries; a failed family is skipped if any address is found; no address: TempFail",
    "CONFORMANCE": "mxdoctor's conformance run: the real Postfix 3.7, Exim 4.96, OpenSMTPD 6.8.0p2 and Sendmail "
    "8.17 (Debian 12) against the lab scenarios, outcomes and texts as logged (docs/conformance.md)",
}

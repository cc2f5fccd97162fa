"""The names the audit asks: mixed-case twins, a name that cannot exist, the empty non-terminals
between a zone and its mail names. The probe set itself is data in ``mxdoctor.dns.probeset``.
"""

from __future__ import annotations

NONEXISTENT_LABEL = "mxdoctor-nonexistent-probe"


def mixed_case(name: str) -> str:
    """``example.com.`` -> ``ExAmPlE.CoM.``: the letter case a 0x20-style resolver might send."""
    out: list[str] = []
    upper = True
    for ch in name:
        if ch.isalpha():
            out.append(ch.upper() if upper else ch.lower())
            upper = not upper
        else:
            out.append(ch)
    return "".join(out)


def nonexistent(zone: str) -> str:
    return f"{NONEXISTENT_LABEL}.{zone}" if zone != "." else f"{NONEXISTENT_LABEL}."


def empty_nonterminals(zone: str, names: list[str]) -> list[str]:
    """Names strictly between ``zone`` and each of ``names`` (in the zone): they exist (as empty
    non-terminals at least) because a name below them does, so NXDOMAIN for them is wrong."""
    out: list[str] = []
    suffix = "" if zone == "." else zone
    for name in names:
        if name == zone or not name.endswith("." + suffix if suffix else "."):
            continue
        labels = name[: len(name) - len(suffix)].rstrip(".").split(".")
        for i in range(1, len(labels)):
            candidate = ".".join(labels[i:]) + "." + suffix
            if candidate not in out and candidate not in names:
                out.append(candidate)
    return out

"""Times in listings that print local wall-clock time without a year (mailq of Postfix and Sendmail)."""

from __future__ import annotations

from datetime import datetime


class NotUnderstood(ValueError):
    """A listing's time that no year makes valid."""


def yearless(text: str, fmt: str, now: float) -> float:
    """Epoch seconds of a local ``text`` in ``fmt`` (no %Y), in the latest year not after ``now`` + 1 day.

    Raises NotUnderstood (a ValueError) when the text does not match.
    """
    text = " ".join(text.split())
    year = datetime.fromtimestamp(now).year
    for candidate in (year, year - 1):
        try:
            ts = datetime.strptime(f"{candidate} {text}", "%Y " + fmt).timestamp()
        except (ValueError, OverflowError):
            # Feb 29 exists only in some years: try the previous one before giving up.
            continue
        if ts <= now + 86400:
            return ts
    raise NotUnderstood(f"no year fits {text!r}")

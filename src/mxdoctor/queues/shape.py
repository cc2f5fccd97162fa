"""Queue shape: messages per destination domain in qshape's geometric age buckets, with the oldest
message and the dominant deferral reason of each domain. One pass over the record stream; memory
grows with the number of domains and distinct reasons, not with the number of messages.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mxdoctor.queues import classify
from mxdoctor.queues.classify import Category, Deferral
from mxdoctor.queues.record import Item, Malformed, Mta, QueuedMessage

# qshape's default columns: T, then ages below 5, 10, 20, ... 1280 minutes, then 1280+.
LIMITS_MINUTES = (5, 10, 20, 40, 80, 160, 320, 640, 1280)
BUCKET_LABELS = tuple(str(m) for m in LIMITS_MINUTES) + (f"{LIMITS_MINUTES[-1]}+",)
_LIMITS_SECONDS = tuple(m * 60 for m in LIMITS_MINUTES)
MALFORMED_EXAMPLES = 5
UNKNOWN_DOMAIN = "(no domain)"


# Distinct reason texts kept per domain; beyond this, further texts are counted under their
# skeleton (hosts and addresses blanked), which bounds memory on pathological listings only.
MAX_TEXTS = 256


@dataclass
class DomainShape:
    """Counts for one destination domain (or for the TOTAL row).

    Reasons are counted by raw text while reading (cheap: a str hash is cached) and classified when
    asked: categories through the cached skeleton match, the dominant reason by grouping texts of
    the same rule and classifying the most frequent text of the biggest group.
    """

    domain: str
    messages: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKET_LABELS))
    oldest_arrival: float | None = None
    oldest_id: str | None = None
    mtas: set[Mta] = field(default_factory=set)
    raw_reasons: dict[str, int] = field(default_factory=dict)

    def add(self, msg: QueuedMessage, bucket: int | None) -> None:
        self.messages += msg.messages
        if bucket is not None:
            self.buckets[bucket] += msg.messages
        arrival = msg.arrival
        if arrival is not None and (self.oldest_arrival is None or arrival < self.oldest_arrival):
            self.oldest_arrival = arrival
            self.oldest_id = msg.queue_id
        self.mtas.add(msg.mta)

    def add_reason(self, text: str, weight: int = 1, cap: int | None = MAX_TEXTS) -> None:
        raw = self.raw_reasons
        if text in raw:
            raw[text] += weight
        elif cap is None or len(raw) < cap:
            raw[text] = weight
        else:
            key = classify.skeleton(text)
            raw[key] = raw.get(key, 0) + weight

    def merge(self, other: DomainShape, cap: int | None = MAX_TEXTS) -> None:
        """Add another partial count of the same domain (from another part of the listing)."""
        self.messages += other.messages
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        if other.oldest_arrival is not None and (
            self.oldest_arrival is None or other.oldest_arrival < self.oldest_arrival
        ):
            self.oldest_arrival, self.oldest_id = other.oldest_arrival, other.oldest_id
        self.mtas |= other.mtas
        for text, n in other.raw_reasons.items():
            self.add_reason(text, n, cap)

    def _groups(self) -> dict[tuple[Category, str | None], list[tuple[int, str]]]:
        groups: dict[tuple[Category, str | None], list[tuple[int, str]]] = {}
        for text, n in self.raw_reasons.items():
            groups.setdefault(classify.kind(classify.skeleton(text)), []).append((n, text))
        return groups

    @property
    def reasons(self) -> Counter[Deferral]:
        """Deferred recipients per fully classified reason (one classification per distinct text)."""
        out: Counter[Deferral] = Counter()
        for text, n in self.raw_reasons.items():
            out[classify.classify(text)] += n
        return out

    @property
    def texts(self) -> dict[Deferral, str]:
        """The most frequent original text of each classified reason."""
        best: dict[Deferral, tuple[int, str]] = {}
        for text, n in self.raw_reasons.items():
            d = classify.classify(text)
            if d not in best or n > best[d][0]:
                best[d] = (n, text)
        return {d: t for d, (_, t) in best.items()}

    def oldest_age(self, now: float) -> float | None:
        return None if self.oldest_arrival is None else max(0.0, now - self.oldest_arrival)

    @property
    def dominant_text(self) -> str | None:
        """The most frequent text of the most frequent kind of reason (None when none was given)."""
        groups = self._groups()
        if not groups:
            return None
        members = max(groups.values(), key=lambda texts: sum(n for n, _ in texts))
        return max(members)[1]

    @property
    def dominant(self) -> Deferral | None:
        """The classified dominant reason (see ``dominant_text``)."""
        text = self.dominant_text
        return None if text is None else classify.classify(text)

    def dominant_dict(self) -> dict[str, Any] | None:
        """The dominant reason as plain data (JSON output, alert payloads)."""
        d = self.dominant
        if d is None:
            return None
        return {
            "category": d.category.value,
            "summary": d.summary,
            "rule": d.rule,
            "host": d.host,
            "record_type": d.record_type,
            "status": d.status,
            "enhanced_status": d.enhanced_status,
            "detail": d.detail,
            "text": self.dominant_text,
            "recipients": self.dominant_count(),
        }

    def dominant_count(self) -> int:
        dominant = self.dominant
        if dominant is None:
            return 0
        key = (dominant.category, dominant.rule)
        return sum(n for n, _ in self._groups().get(key, []))

    @property
    def deferred(self) -> int:
        return sum(self.raw_reasons.values())

    def categories(self) -> Counter[Category]:
        out: Counter[Category] = Counter()
        for (category, _rule), texts in self._groups().items():
            out[category] += sum(n for n, _ in texts)
        return out


@dataclass
class Shape:
    """The whole queue: TOTAL first, then each domain; malformed input is counted, with examples."""

    now: float
    total: DomainShape = field(default_factory=lambda: DomainShape("TOTAL"))
    domains: dict[str, DomainShape] = field(default_factory=dict)
    records: int = 0
    malformed: int = 0
    malformed_examples: list[Malformed] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        """False when input was given but not one record could be read from it."""
        return self.records > 0 or self.malformed == 0

    def merge(self, other: Shape, line_offset: int = 0) -> None:
        """Add the shape of a later part of the same listing, whose line numbers start after ``line_offset``."""
        self.total.merge(other.total, cap=None)
        for name, dom in other.domains.items():
            mine = self.domains.get(name)
            if mine is None:
                self.domains[name] = dom
            else:
                mine.merge(dom)
        self.records += other.records
        self.malformed += other.malformed
        room = MALFORMED_EXAMPLES - len(self.malformed_examples)
        self.malformed_examples += [m._replace(line=m.line + line_offset) for m in other.malformed_examples[:room]]

    def top(self, n: int | None = None) -> list[DomainShape]:
        """Domains by message count, then by age (oldest first); ``n`` None or 0 for all."""
        ordered = sorted(
            self.domains.values(),
            key=lambda d: (-d.messages, d.oldest_arrival if d.oldest_arrival is not None else float("inf")),
        )
        return ordered[:n] if n else ordered


def bucket_of(age_seconds: float) -> int:
    return bisect.bisect_right(_LIMITS_SECONDS, age_seconds)


def build(items: Iterable[Item], *, now: float, queues: Iterable[str] | None = None) -> Shape:
    """Shape a record stream as of ``now`` (epoch seconds), optionally only the named queues."""
    shape = Shape(now)
    wanted = frozenset(queues) if queues else None
    domains = shape.domains
    total = shape.total
    limits = _LIMITS_SECONDS
    bisect_right = bisect.bisect_right
    for item in items:
        if type(item) is Malformed:
            shape.malformed += 1
            if len(shape.malformed_examples) < MALFORMED_EXAMPLES:
                shape.malformed_examples.append(item)
            continue
        msg: QueuedMessage = item  # type: ignore[assignment]
        shape.records += 1
        if wanted is not None and msg.queue_name not in wanted:
            continue
        if msg.messages == 0:
            continue
        arrival = msg.arrival
        bucket = None if arrival is None else bisect_right(limits, now - arrival)
        total.add(msg, bucket)
        rcpts = msg.recipients
        if not rcpts:
            rcpts = ((None, UNKNOWN_DOMAIN, None),)  # type: ignore[assignment]
        first: str | None = None
        others: set[str] | None = None
        for _address, name, reason in rcpts:
            name = name or UNKNOWN_DOMAIN
            dom = domains.get(name)
            if dom is None:
                dom = domains[name] = DomainShape(name)
            # Count a message once per domain, however many of its recipients are there.
            if first is None:
                first = name
                dom.add(msg, bucket)
            elif name != first:
                if others is None:
                    others = set()
                if name not in others:
                    others.add(name)
                    dom.add(msg, bucket)
            if reason:
                raw = dom.raw_reasons
                if reason in raw:
                    raw[reason] += msg.messages
                else:
                    dom.add_reason(reason, msg.messages)
    for dom in domains.values():
        for text, n in dom.raw_reasons.items():
            total.add_reason(text, n, cap=None)
    return shape

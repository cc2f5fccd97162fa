"""Signed zones for the realdns suite, made by real signers: BIND's (keys from ``dnssec-keygen``, DS from
``dnssec-dsfromkey``, zones from ``dnssec-signzone -O full``: one record a line), the signed files then
edited where a fault calls for it, as operators and broken scripts edit them in the field; and Knot's
automatic signing (keys made beforehand with ``keymgr``, so the parent's DS is known).
"""

from __future__ import annotations

import datetime
import subprocess
from dataclasses import dataclass
from pathlib import Path

KEYGEN = "/usr/bin/dnssec-keygen"
DSFROMKEY = "/usr/bin/dnssec-dsfromkey"
SIGNZONE = "/usr/bin/dnssec-signzone"
KEYMGR = "/usr/sbin/keymgr"  # Knot's key manager (package knot)
TOOLS = (KEYGEN, DSFROMKEY, SIGNZONE, KEYMGR)
PACKAGE = "bind9-utils"  # the Debian package of BIND's three tools (the Makefile's DEBS has it)
DAY = 86400


class SigningError(Exception):
    pass


def _run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise SigningError(f"{' '.join(argv[:3])}...: {done.stderr.strip()[-400:]}")
    return done.stdout


@dataclass(frozen=True)
class Keys:
    """A zone's key pair in its own key directory (the KSK's DS goes to the parent)."""

    zone: str  # with the final dot
    directory: Path
    ksk: str  # file base names, Kzone.+alg+tag
    zsk: str

    @property
    def ksk_tag(self) -> int:
        return int(self.ksk.rsplit("+", 1)[1])

    def ds(self) -> list[str]:
        """The KSK's DS (SHA-256) as dnssec-dsfromkey writes it: "zone. IN DS tag alg 2 HEX"."""
        return _ds(self.directory, self.ksk)


def _ds(directory: Path, base: str) -> list[str]:
    return [line for line in _run([DSFROMKEY, "-2", f"{base}.key"], directory).splitlines() if line.strip()]


def keygen(root: Path, zone: str, algorithm: str = "ECDSAP256SHA256", *, name: str = "") -> Keys:
    """A KSK and a ZSK for ``zone`` in ``root/<name or zone>``."""
    directory = root / (name or zone.rstrip(".") or "root")
    directory.mkdir(parents=True, exist_ok=True)
    size = ["-b", "2048"] if algorithm.startswith("RSA") else []
    common = [KEYGEN, "-q", "-K", str(directory), "-a", algorithm, *size, "-n", "ZONE"]
    ksk = _run([*common, "-f", "KSK", zone], directory).strip()
    zsk = _run([*common, zone], directory).strip()
    return Keys(zone, directory, ksk, zsk)


def _stamp(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y%m%d%H%M%S")


def sign(keys: Keys, unsigned: str, *, window: tuple[float, float] | None = None, nsec3: bool = False) -> str:
    """``unsigned`` signed with ``dnssec-signzone -S`` (the keys of its directory; NSEC, or NSEC3 without
    salt or extra iterations as RFC 9276 asks), one record a line; ``window`` (inception, expiration; epoch
    seconds) replaces the default (an hour ago, 30 days on), and turns the signer's own check off, which
    refuses signatures that are not valid now."""
    src = keys.directory / "zone.unsigned"
    out = keys.directory / "zone.signed"
    src.write_text(unsigned)
    argv = [SIGNZONE, "-S", "-K", str(keys.directory), "-d", str(keys.directory), "-o", keys.zone, "-O", "full",
            "-f", str(out)]
    if window is not None:
        argv += ["-s", _stamp(window[0]), "-e", _stamp(window[1]), "-P"]
    if nsec3:
        argv += ["-3", "-", "-H", "0"]
    _run([*argv, str(src)], keys.directory)
    return out.read_text()


# -- edits of a signed zone file ----------------------------------------------------------------------------


def _fields(line: str) -> list[str]:
    return line.split()


def _is(line: str, owner: str, rdtype: str, covered: str = "") -> bool:
    f = _fields(line)
    if len(f) < 5 or line.startswith(";") or f[0].lower() != owner.lower() or f[3] != rdtype:
        return False
    return not covered or f[4] == covered


def drop(text: str, owner: str, rdtype: str, covered: str = "", key_tag: int | None = None) -> str:
    """The zone without the records of ``owner`` ``rdtype`` (an RRSIG: over ``covered``, by ``key_tag``)."""
    def hit(line: str) -> bool:
        if not _is(line, owner, rdtype, covered):
            return False
        return key_tag is None or _fields(line)[10] == str(key_tag)

    kept = [line for line in text.splitlines() if not hit(line)]
    if len(kept) == len(text.splitlines()):
        raise SigningError(f"nothing to drop: {owner} {rdtype} {covered}")
    return "\n".join(kept) + "\n"


def flip_signature(text: str, owner: str, covered: str) -> str:
    """The RRSIG over ``owner`` ``covered`` with bytes of its signature changed (still valid base64)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _is(line, owner, "RRSIG", covered):
            head, sig = line.rsplit(None, 1)
            middle = len(sig) // 2
            swapped = "B" if sig[middle] != "B" else "C"
            lines[i] = f"{head} {sig[:middle]}{swapped}{sig[middle + 1:]}"
            return "\n".join(lines) + "\n"
    raise SigningError(f"no RRSIG over {owner} {covered}")


def _nsec3_hash(name: str) -> str:
    import dns.dnssec

    return str(dns.dnssec.nsec3_hash(name, None, 0, 1)).lower()


def _nsec3_owner(text: str, zone: str, name: str, *, cover: bool) -> str:
    """The owner of the NSEC3 that matches ``name``'s hash (``cover``: whose span covers it)."""
    wanted = _nsec3_hash(name)
    spans = [(f[0].split(".", 1)[0].lower(), f[8].lower(), f[0]) for f in map(_fields, text.splitlines())
             if len(f) > 8 and f[3] == "NSEC3"]
    for start, end, owner in spans:
        if not cover and start == wanted:
            return owner
        if cover and (start < wanted < end if start < end else (wanted > start or wanted < end)):
            return owner
    raise SigningError(f"no NSEC3 {'covers' if cover else 'matches'} {name} in {zone}")


def drop_nsec3(text: str, zone: str, name: str, *, cover: bool = False) -> str:
    """The zone without the NSEC3 (and its RRSIG) that matches ``name`` (``cover``: that covers it)."""
    owner = _nsec3_owner(text, zone, name, cover=cover)
    return drop(drop(text, owner, "NSEC3"), owner, "RRSIG", "NSEC3")


def ds_algorithm(ds_lines: list[str], algorithm: int) -> list[str]:
    """DS lines with the algorithm field replaced (``zone. IN DS tag ALG digest-type digest``)."""
    out = []
    for line in ds_lines:
        f = _fields(line)
        f[4] = str(algorithm)
        out.append(" ".join(f))
    return out


def tools_missing() -> list[str]:
    return [t for t in TOOLS if not Path(t).exists()]


# -- Knot's automatic signing --------------------------------------------------------------------------------

KNOT_POLICY = """policy:
  - id: realdns
    algorithm: ecdsap256sha256
    manual: on
    nsec3: on
    nsec3-iterations: 0
    nsec3-salt-length: 0
"""


def knot_keys(conf: Path, zone: str) -> list[str]:
    """A KSK and a ZSK for ``zone`` generated into the KASP database of the Knot configuration ``conf``
    (``keymgr generate``), so that the parent's DS is known before Knot signs the zone when it loads it;
    the KSK's DS (SHA-256) as ``keymgr ds`` prints it."""
    cwd = conf.parent
    _run([KEYMGR, "-c", str(conf), zone, "generate", "algorithm=13", "ksk=yes", "zsk=no"], cwd)
    _run([KEYMGR, "-c", str(conf), zone, "generate", "algorithm=13", "ksk=no", "zsk=yes"], cwd)
    return [line for line in _run([KEYMGR, "-c", str(conf), zone, "ds"], cwd).splitlines()
            if len(line.split()) > 5 and line.split()[1] == "DS" and line.split()[4] == "2"]

"""Unpacked Debian MTAs for the conformance harness, each in its own directory, beside the host's Postfix.

exim4-daemon-light, opensmtpd and sendmail-bin conflict with postfix (and with each other) as installed
packages, so none is installed: ``apt-get download`` fetches the .deb files and ``dpkg -x`` unpacks each
MTA into ``/var/tmp/mxdoctor-conformance/<mta>/`` (override with MXDOCTOR_CONFORMANCE_DIR). Shared
libraries the host lacks are fetched the same way (the packages' ``lib*`` dependencies, recursively); the
harness lists their directories in a namespace-private ld.so.cache. Nothing is configured or registered
with dpkg; the host's mail setup is untouched. A finished unpack is marked ``.complete`` and reused.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

BASE = Path(os.environ.get("MXDOCTOR_CONFORMANCE_DIR", "/var/tmp/mxdoctor-conformance"))

# The Debian packages each unpacked MTA needs (Postfix is the installed host package).
PACKAGES: dict[str, tuple[str, ...]] = {
    "exim": ("exim4-daemon-light", "exim4-base"),
    "opensmtpd": ("opensmtpd",),
    "sendmail": ("sendmail-bin", "sendmail-cf", "m4"),
}
# The binaries each MTA runs, relative to its unpack directory; ldd must resolve all of them.
BINARIES: dict[str, tuple[str, ...]] = {
    "exim": ("usr/sbin/exim4",),
    "opensmtpd": ("usr/sbin/smtpd", "usr/sbin/smtpctl"),
    "sendmail": ("usr/libexec/sendmail/sendmail", "usr/bin/m4"),
}
APT_TIMEOUT = 300.0
MAX_LIBRARY_PACKAGES = 40  # bound on the dependency walk

_lock = threading.Lock()


class InstallError(Exception):
    """An MTA could not be fetched or unpacked; the message says which step failed."""


@dataclass(frozen=True)
class Unpacked:
    mta: str
    root: Path

    def path(self, relative: str) -> Path:
        return self.root / relative

    def env(self) -> dict[str, str]:
        """An environment finding the private libraries (for ldd; the MTAs use the namespace's cache)."""
        libs = [str(p) for p in library_dirs(self.root)]
        env = dict(os.environ)
        if libs:
            env["LD_LIBRARY_PATH"] = ":".join(libs + [env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
        return env


def unpacked(mta: str) -> Unpacked:
    """The unpacked MTA, fetched and unpacked on first use; raises InstallError."""
    root = BASE / mta
    with _lock:
        BASE.mkdir(parents=True, exist_ok=True)
        with open(BASE / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # several test processes may share the cache
            if not (root / ".complete").exists():
                _install(mta, root)
    return Unpacked(mta, root)


def _install(mta: str, root: Path) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise InstallError("apt-get and dpkg are needed to fetch the Debian packages")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    debs = Path(tempfile.mkdtemp(prefix=f"debs-{mta}-", dir=BASE))
    try:
        seen: set[str] = set()
        queue = list(PACKAGES[mta])
        while queue:
            names = [n for n in dict.fromkeys(queue) if n not in seen]
            queue = []
            if not names:
                break
            seen.update(names)
            if len(seen) > MAX_LIBRARY_PACKAGES:
                raise InstallError(
                    f"{mta}: more than {MAX_LIBRARY_PACKAGES} packages to fetch: {sorted(seen)}"
                )
            _download(names, debs)
            for name in names:
                deb = next(debs.glob(f"{name}_*.deb"), None)
                if deb is None:
                    raise InstallError(f"apt-get download {name}: no .deb file appeared")
                _run(["dpkg-deb", "-x", str(deb), str(root)])
                queue += [d for d in _library_depends(deb) if not _installed(d)]
        _check_binaries(mta, root)
        (root / ".complete").write_text(" ".join(sorted(seen)) + "\n")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(debs, ignore_errors=True)


def _download(names: list[str], where: Path) -> None:
    where.chmod(0o777)  # apt drops to the _apt user for downloads when it can
    result = subprocess.run(
        ["apt-get", "download", *names], cwd=where, capture_output=True, text=True, timeout=APT_TIMEOUT
    )
    if result.returncode != 0:
        # A stale package list (fresh machine): refresh once and retry.
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=APT_TIMEOUT)
        result = subprocess.run(
            ["apt-get", "download", *names], cwd=where, capture_output=True, text=True, timeout=APT_TIMEOUT
        )
    if result.returncode != 0:
        raise InstallError(f"apt-get download {' '.join(names)} failed: {result.stderr.strip()[-400:]}")


def _library_depends(deb: Path) -> list[str]:
    """The lib* packages a .deb depends on (first alternative of each, without versions)."""
    text = _run(["dpkg-deb", "-f", str(deb), "Depends"]).strip()
    out = []
    for clause in filter(None, (c.strip() for c in text.split(","))):
        name = re.split(r"[\s(:]", clause.split("|")[0].strip(), maxsplit=1)[0]
        if name.startswith("lib"):
            out.append(name)
    return out


def _installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, timeout=30
    )
    return result.returncode == 0 and result.stdout.strip().endswith(" installed")


def _check_binaries(mta: str, root: Path) -> None:
    env = Unpacked(mta, root).env()
    for relative in BINARIES[mta]:
        binary = root / relative
        if not binary.exists():
            raise InstallError(f"{mta}: {relative} missing after unpacking")
        missing = [
            line.split()[0]
            for line in _run(["ldd", str(binary)], env=env).splitlines()
            if "not found" in line
        ]
        if missing:
            raise InstallError(f"{mta}: {relative} lacks shared libraries {', '.join(missing)}")


def library_dirs(root: Path) -> list[Path]:
    return [
        p
        for p in (
            root / "lib",
            root / "usr/lib",
            *root.glob("lib/*-linux-gnu"),
            *root.glob("usr/lib/*-linux-gnu"),
        )
        if p.is_dir()
    ]


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    if result.returncode != 0:
        raise InstallError(f"{' '.join(cmd)}: {result.stderr.strip()[-400:]}")
    return result.stdout

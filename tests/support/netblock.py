"""Make pods' ports unreachable from this host, as a NetworkPolicy would for a scraper (iptables, root).

The host's own packets to each address on the port are dropped in a chain of ours hooked into OUTPUT, so only
traffic this host sends to addresses the project created is affected, and removing the chain undoes it all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

SBIN = os.pathsep.join(["/usr/sbin", "/sbin", os.environ.get("PATH", "")])


def iptables() -> str | None:
    return shutil.which("iptables", path=SBIN)


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=30)


@dataclass
class PortBlock:
    addresses: list[str]
    port: int
    chain: str = field(default_factory=lambda: f"FULCRUM-E2E-{os.getpid()}")
    _on: bool = False

    def __enter__(self) -> PortBlock:
        binary = iptables()
        if binary is None:
            raise RuntimeError("iptables is needed to block a port (Debian package iptables)")
        _run(binary, "-w", "-N", self.chain)
        self._on = True
        for address in self.addresses:
            rule = ["-d", f"{address}/32", "-p", "tcp", "--dport", str(self.port), "-j", "DROP"]
            _run(binary, "-w", "-A", self.chain, *rule)
        _run(binary, "-w", "-I", "OUTPUT", "-j", self.chain)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.lift()

    def lift(self) -> None:
        binary = iptables()
        if not self._on or binary is None:
            return
        _run(binary, "-w", "-D", "OUTPUT", "-j", self.chain, check=False)
        _run(binary, "-w", "-F", self.chain, check=False)
        _run(binary, "-w", "-X", self.chain, check=False)
        self._on = False

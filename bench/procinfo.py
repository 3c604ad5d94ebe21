"""What the server process costs: resident memory and CPU time, read from /proc (Linux).

The server is found by the port it listens on: /proc/net/tcp{,6} gives the listening socket's
inode, and the process holding a file descriptor on that socket is the server (as `ss -ltnp`
would show). With several Sanic workers, every process holding the socket is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROC = Path("/proc")
_LISTEN = "0A"  # TCP state code for LISTEN in /proc/net/tcp


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        path = PROC / "net" / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def pids_listening_on(port: int) -> list[int]:
    """Processes holding a listening socket on `port` (needs the right to read their fds)."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not targets:
        return []
    pids = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in targets:
                        pids.append(int(entry.name))
                        break
    return sorted(pids)


def _status_kib(pid: int, key: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def rss_kib(pid: int) -> int | None:
    return _status_kib(pid, "VmRSS")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the process so far."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        stat = (PROC / str(pid) / "stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (
            (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        )
    return ""


@dataclass
class ServerWatch:
    """Samples the server's RSS while a load runs; CPU time is the difference start -> stop."""

    pids: list[int]
    interval_s: float = 0.25
    rss_before_kib: int = 0
    rss_peak_kib: int = 0
    rss_after_kib: int = 0
    cpu_s: float = 0.0
    _cpu_start: float = 0.0
    _wall_start: float = 0.0
    _wall_s: float = 0.0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def _rss(self) -> int:
        return sum(rss_kib(pid) or 0 for pid in self.pids)

    def _cpu(self) -> float:
        return sum(cpu_seconds(pid) or 0.0 for pid in self.pids)

    async def _sample(self) -> None:
        while True:
            self.rss_peak_kib = max(self.rss_peak_kib, self._rss())
            await asyncio.sleep(self.interval_s)

    async def __aenter__(self) -> ServerWatch:
        loop = asyncio.get_running_loop()
        self.rss_before_kib = self.rss_peak_kib = self._rss()
        self._cpu_start, self._wall_start = self._cpu(), loop.time()
        if self.pids:
            self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.rss_after_kib = self._rss()
        self.rss_peak_kib = max(self.rss_peak_kib, self.rss_after_kib)
        self.cpu_s = self._cpu() - self._cpu_start
        self._wall_s = asyncio.get_running_loop().time() - self._wall_start

    def summary(self) -> dict[str, Any]:
        if not self.pids:
            return {"pids": [], "note": "server process not found: pass --server-pid"}
        return {
            "pids": self.pids,
            "cmdline": [cmdline(pid) for pid in self.pids],
            "rss_mib_before": round(self.rss_before_kib / 1024, 1),
            "rss_mib_peak": round(self.rss_peak_kib / 1024, 1),
            "rss_mib_after": round(self.rss_after_kib / 1024, 1),
            "cpu_s": round(self.cpu_s, 2),
            "cpu_utilisation": round(self.cpu_s / self._wall_s, 3) if self._wall_s else None,
        }

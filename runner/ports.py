"""Is a port free on loopback, and if not, which process holds it (read from /proc on Linux)."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

_LISTEN = "0A"  # the TCP state column of /proc/net/tcp for a listening socket


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Could gunicorn bind host:port now? (It sets SO_REUSEADDR, so a TIME_WAIT does not count.)"""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_holder(port: int) -> str | None:
    """`pid 123 (command line)` of a process listening on the port, where /proc tells."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    holders = sorted(_pids_holding(inodes))
    if not holders:
        return None
    pid = holders[0]  # the lowest pid is the parent (a gunicorn master before its workers)
    return f"pid {pid} ({_command_line(pid)})"


def busy_ports_message(ports: dict[str, int]) -> str | None:
    """One line naming the first busy port and its holder, or None when every port is free."""
    busy = [(name, port) for name, port in ports.items() if not port_is_free(port)]
    if not busy:
        return None
    name, port = busy[0]
    holder = port_holder(port)
    held_by = f"is in use by {holder}" if holder else "is in use by another program"
    more = f" (and {len(busy) - 1} more of its ports)" if len(busy) > 1 else ""
    if name == "simulator" or name.endswith(" metrics"):
        variable = "SIMULATOR_PORT" if name == "simulator" else "METRICS_PORT"
    else:
        variable = f"{name.upper()}_PORT"
    return (
        f"KeyLM not started: port {port} ({name}) {held_by}{more}. "
        f"Stop that program (another `make run`?) or set {variable}."
    )


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def _pids_holding(inodes: set[str]) -> set[int]:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    pids.add(int(entry.name))
                    break
    return pids


def _command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "unknown"
    text = raw.replace(b"\0", b" ").decode(errors="replace").strip() or "unknown"
    return text if len(text) <= 120 else text[:117] + "..."

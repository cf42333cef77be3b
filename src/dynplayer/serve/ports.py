"""Is the port free? Checked before serving (and before the demo's first stage), so a taken
port is one line suggesting `--port`, not uvicorn's `[Errno 98]` after "Dynplayer: http://..."."""

from __future__ import annotations

import errno
import socket

from dynplayer.errors import ConfigError


def _bind(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # as uvicorn binds: a port held only by connections in TIME_WAIT counts as free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))


def check_port(host: str, port: int) -> None:
    """A ConfigError naming the port, and a free one to use instead, when `host:port` cannot be
    listened on; a bad --host or --port is one too."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be from 1 to 65535, got {port}")
    try:
        _bind(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use (another Dynplayer or "
                              f"server?); choose another with --port, e.g. --port "
                              f"{free_port(host, port)}") from exc
        if exc.errno == errno.EACCES:
            raise ConfigError(f"not allowed to listen on port {port} (ports below 1024 need "
                              "root); choose another with --port") from exc
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                          "(check --host and --port)") from exc


def free_port(host: str, after: int) -> int:
    """The first port after `after` that can be listened on (else one the system picks)."""
    for port in range(after + 1, min(after + 50, 65535)):
        try:
            _bind(host, port)
            return port
        except OSError:
            continue
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])

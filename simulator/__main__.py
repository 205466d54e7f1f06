"""`python -m simulator --port 8099`: run the simulator under gunicorn with one gevent worker."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def gunicorn_argv(host: str, port: int) -> list[str]:
    """The gunicorn command line the tests and `make` use."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "gevent",
        "-w",
        "1",
        "--no-control-socket",
        "--graceful-timeout",
        "2",
        "--chdir",
        str(ROOT),
        "-b",
        f"{host}:{port}",
        "simulator.app:create_app()",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    argv = gunicorn_argv(args.host, args.port)
    os.execv(argv[0], argv)  # noqa: S606 - fixed argv, no shell


if __name__ == "__main__":
    main()

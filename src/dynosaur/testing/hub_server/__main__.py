"""The test Hub as a process: `python -m dynosaur.testing.hub_server --root DIR --port 0 --port-file PATH`."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from dynosaur.testing.hub_server.server import HubServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A Hugging Face Hub-compatible server for tests.")
    parser.add_argument("--root", default=None, help="where repos are stored (default: a temporary folder)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", default=None, help="write the bound port here once serving")
    parser.add_argument("--user", default="tester")
    parser.add_argument("--org", action="append", default=None, help="an org of the user (repeatable)")
    parser.add_argument("--lfs-mode", default="auto", choices=("auto", "always", "never"))
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    args = parser.parse_args(argv)
    hub = HubServer(
        args.root,
        user=args.user,
        orgs=args.org if args.org is not None else ("tester-org",),
        lfs_mode=args.lfs_mode,
        host=args.host,
        port=args.port,
        latency=args.latency,
    ).start()
    if args.port_file:
        tmp = f"{args.port_file}.tmp"
        Path(tmp).write_text(str(hub.port))
        os.replace(tmp, args.port_file)
    print(f"fake hub serving on {hub.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    hub.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

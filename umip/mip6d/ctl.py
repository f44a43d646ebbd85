"""mip6d-ctl: ask a running mip6d for its status or its bindings."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import Any

from mip6d.control import DEFAULT_PATH


def request(path: str, command: str, timeout: float = 5.0) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps({"command": command}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer: dict[str, Any] = json.loads(data)
    return answer


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no bindings)"
    keys = list(rows[0])
    widths = [max(len(k), *(len(str(r.get(k))) for r in rows)) for k in keys]
    lines = ["  ".join(k.upper().ljust(w) for k, w in zip(keys, widths, strict=True))]
    lines += ["  ".join(str(r.get(k)).ljust(w) for k, w in zip(keys, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mip6d-ctl", description=__doc__)
    parser.add_argument("--control", default=DEFAULT_PATH, help=f"control socket (default {DEFAULT_PATH})")
    parser.add_argument("command", choices=["status", "bindings"])
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")
    args = parser.parse_args(argv)
    try:
        answer = request(args.control, args.command)
    except OSError as err:
        print(f"mip6d-ctl: {args.control}: {err.strerror or err}", file=sys.stderr)
        return 1
    if not answer.get("ok"):
        print(f"mip6d-ctl: {answer.get('error')}", file=sys.stderr)
        return 1
    body = answer[args.command]
    if args.json:
        print(json.dumps(body, indent=2))
    elif args.command == "bindings":
        print(_table(body))
    else:
        print(_status(body))
    return 0


def _status(body: dict[str, object]) -> str:
    """`key: value` lines; a list (a MN's moves, a HA's recent BUs) gets one line per entry."""
    lines = []
    for key, value in body.items():
        if isinstance(value, list):
            lines += [f"{key}: " + " ".join(f"{k}={v}" for k, v in entry.items()) for entry in value]
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

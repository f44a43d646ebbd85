"""mip6d: the iro Mobile IPv6 daemon (mobile node and home agent)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import os
import sys
from pathlib import Path

from mip6d import __version__, kernelcheck
from mip6d.config import ConfigError, Role, load, load_keys
from mip6d.control import DEFAULT_PATH
from mip6d.daemon import Daemon, Options, mode_of
from mip6d.journal import FileJournal, JournalLockedError

DEFAULT_CONFIG = "/etc/mip6d.conf"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mip6d", description=__doc__)
    parser.add_argument("-c", dest="config", default=DEFAULT_CONFIG, metavar="FILE",
                        help=f"configuration file (default {DEFAULT_CONFIG})")
    parser.add_argument("-d", dest="debug", type=int, metavar="LEVEL",
                        help="debug level: 0 warnings, 1 info, 2+ debug (default: DebugLevel of the file)")
    role = parser.add_mutually_exclusive_group()
    role.add_argument("-M", dest="role", action="store_const", const=Role.MN, help="run as mobile node")
    role.add_argument("-H", dest="role", action="store_const", const=Role.HA, help="run as home agent")
    role.add_argument("-C", dest="role", action="store_const", const=Role.CN, help="run as correspondent node")
    parser.add_argument("-V", "--version", action="version", version=f"mip6d {__version__}")
    parser.add_argument("--foreground", action="store_true", help="do not detach (systemd, tests)")
    parser.add_argument("--syslog", action="store_true", help="log to syslog (default when detached)")
    parser.add_argument("--keys", metavar="FILE", help="manual keys (setkey 'add' syntax) to install at start")
    parser.add_argument("--control", default=DEFAULT_PATH, metavar="PATH",
                        help=f"control socket for mip6d-ctl (default {DEFAULT_PATH})")
    parser.add_argument("--check", action="store_true", help="check the configuration and the kernel, then exit")
    return parser.parse_args(argv)


def setup_logging(level: int, syslog: bool) -> None:
    handler: logging.Handler
    if syslog:
        handler = logging.handlers.SysLogHandler(address="/dev/log", facility="daemon")
        handler.setFormatter(logging.Formatter("mip6d[%(process)d]: %(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if level <= 0 else logging.INFO if level == 1 else logging.DEBUG)


def detach() -> None:
    """Classic double fork, for init systems without supervision."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load(args.config, role=args.role)
        keys = load_keys(args.keys) if args.keys else []
    except ConfigError as err:
        print(f"mip6d: {err}", file=sys.stderr)
        return 2
    if config.role is Role.CN:
        print(f"mip6d: {args.config}: the correspondent node role is not implemented yet", file=sys.stderr)
        return 2
    try:
        kernelcheck.check(mode_of(config), home_agent=config.role is Role.HA)
    except (kernelcheck.UnsupportedKernelError, OSError) as err:
        print(f"mip6d: {err}", file=sys.stderr)
        return 3
    if args.check:
        print(f"{args.config}: {config.role.value}, {mode_of(config).name} mode, kernel {os.uname().release}: ok")
        return 0
    try:  # before detaching, so that a second daemon on this socket says why it cannot start
        Path(args.control).parent.mkdir(parents=True, exist_ok=True)
        journal = FileJournal(Path(f"{args.control}.journal"))
    except JournalLockedError as err:
        print(f"mip6d: {err}", file=sys.stderr)
        return 4
    except OSError as err:
        print(f"mip6d: crash journal: {err}", file=sys.stderr)
        return 1
    if not args.foreground:
        detach()
    setup_logging(config.debug_level if args.debug is None else args.debug, args.syslog or not args.foreground)
    daemon = Daemon(Options(args.config, args.keys, args.control, args.role), config, keys, journal)
    try:
        asyncio.run(daemon.run())
    except Exception as err:  # a start-up failure: already logged context, say it in one line
        logging.getLogger("mip6d").error("%s", err, exc_info=logging.getLogger().level <= logging.INFO)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

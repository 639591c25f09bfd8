"""The ``spinr`` command's dispatcher: every command and the module that implements it, in one table.

``main(argv)`` returns an exit code and never lets a traceback reach the user for errors they can
cause; ``run()`` is the console-script wrapper. Subcommand modules are imported when the parser is
built, and import torch (or FastAPI) only when they run.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from codec import __version__
from codec.errors import SpinrError
from netsim.errors import NetsimError

# Errors a user can cause: one line, no traceback. netsim has its own base class (it imports nothing of codec).
USER_ERRORS = (SpinrError, NetsimError)

# Every command of ``spinr``, in one table: (command path, "module[:attribute]", help). The module (or the
# attribute) has add_arguments(parser) and run(args) -> int. A path of two words is a subcommand of the
# first: ``netsim proxy`` sits above netsim (it speaks WebSocket and codec packets; netsim imports
# nothing of the project), so this dispatcher, which may import both, hangs it under ``netsim``.
COMMANDS: list[tuple[str, str, str]] = [
    ("encode", "client.codec_cmds:encode", "fit an INR to an image and write a .spnr bitstream"),
    ("decode", "client.codec_cmds:decode", "decode a .spnr bitstream to PNG (any prefix, any size)"),
    ("info", "client.codec_cmds:info", "show a bitstream's header fields and packets"),
    ("eval", "client.codec_cmds:evaluate", "PSNR per prefix depth, SSIM, bytes and bpp against a reference"),
    ("demo", "client.codec_cmds:demo", "encode a real photograph and write every progressive stage as PNG"),
    ("serve", "server.cli", "run the streaming server (FastAPI + uvicorn)"),
    ("upload", "client.upload", "upload an image to a server and wait for its bitstream"),
    ("stream", "client.stream", "stream an image from a server layer by layer, through a simulated channel"),
    ("netsim", "netsim.cli", "network channel simulator tools (stats, proxy)"),
    (
        "netsim proxy",
        "streaming.proxy",
        "WebSocket relay applying a channel between a server and its clients",
    ),
    ("experiment", "experiments.cli", "run an analysis of the Streaming Neural Images study"),
    ("bench", "benchmarks.cli", "run benchmarks and write JSON"),
]
MOVED = {"proxy": "netsim proxy"}
"""Old command names: ``spinr OLD`` says in one line what to type instead."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, as argparse does, without the usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


PROJECT_PACKAGES = {"codec", "client", "server", "netsim", "experiments", "streaming", "benchmarks"}


def _load(target: str) -> Any:
    """Import a subcommand; None when that part (or a third-party extra it needs) is not installed.

    A missing *project* module inside an installed one is a bug and is raised, not hidden."""
    module, _, attr = target.partition(":")
    if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
        return None
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in PROJECT_PACKAGES:
            raise
        return None
    return getattr(mod, attr) if attr else mod


def _subcommands(parser: argparse.ArgumentParser) -> Any:
    """The parser's subcommand action, made on first use (a command module may have made it already)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="spinr", description="spinr: a streaming codec for neural images.")
    parser.add_argument("--version", action="version", version=f"spinr {__version__}")
    parsers: dict[str, argparse.ArgumentParser] = {"": parser}
    for path, target, help_text in COMMANDS:
        parent, _, name = path.rpartition(" ")
        cmd = _load(target)
        if cmd is None or parent not in parsers:
            continue  # that part of spinr is not installed (e.g. a decoder-only install has no server)
        p = _subcommands(parsers[parent]).add_parser(name, help=help_text, description=help_text)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
        parsers[path] = p
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in MOVED:
        print(f"spinr {argv[0]}: this command is now `spinr {MOVED[argv[0]]}`", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except USER_ERRORS as exc:
        print(f"spinr {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"spinr {args.command}: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"spinr {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(
            f"spinr {args.command}: error: {exc.name or exc} is not installed; install spinr with the extra"
            " this command needs (e.g. pip install 'spinr[train]' -c constraints.txt)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"spinr {args.command}: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())

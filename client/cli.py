"""The ``spinr`` command: one entry point, a subcommand per job.

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

from codec import __version__
from codec.errors import SpinrError
from netsim.errors import NetsimError

# Errors a user can cause: one line, no traceback. netsim has its own base class (it imports nothing of codec).
USER_ERRORS = (SpinrError, NetsimError)

# (name, module, help). Each module has add_arguments(parser) and run(args) -> int.
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
        "proxy",
        "streaming.proxy",
        "WebSocket relay that applies a simulated channel between a server and its clients",
    ),
    ("experiment", "experiments.cli", "run an analysis of the Streaming Neural Images study"),
    ("bench", "benchmarks.cli", "run benchmarks and write JSON"),
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as argparse does, without the usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


PROJECT_PACKAGES = {"codec", "client", "server", "netsim", "experiments", "streaming", "benchmarks"}


def _load(target: str):  # noqa: ANN202
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="spinr", description="spinr: a streaming codec for neural images.")
    parser.add_argument("--version", action="version", version=f"spinr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, target, help_text in COMMANDS:
        cmd = _load(target)
        if cmd is None:
            continue  # that part of spinr is not installed (e.g. a decoder-only install has no server)
        p = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
        if name == "netsim":
            _graft_proxy(p)
    return parser


def _graft_proxy(netsim_parser: argparse.ArgumentParser) -> None:
    """``spinr netsim proxy``: the proxy needs websockets and sits above netsim (netsim imports nothing of
    the project), so the dispatcher, which may import both, hangs it under the netsim command."""
    proxy = _load("streaming.proxy")
    actions = [a for a in netsim_parser._actions if isinstance(a, argparse._SubParsersAction)]
    if proxy is None or not actions:
        return
    help_text = "WebSocket relay applying a channel between a server and its clients"
    p = actions[0].add_parser("proxy", help=help_text, description=help_text)
    proxy.add_arguments(p)
    p.set_defaults(_run=proxy.run)


def main(argv: Sequence[str] | None = None) -> int:
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

"""The ``spinr`` command's dispatcher: every command and the module that implements it, in one table.

``main(argv)`` returns an exit code and never lets a traceback reach the user for errors they can
cause; ``run()`` is the console-script wrapper. Subcommand modules are imported when the parser is
built, and import torch (or FastAPI) only when they run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import select
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from codec import __version__
from codec.errors import SpinrError
from netsim.errors import NetsimError

# Errors a user can cause: one line, no traceback. netsim has its own base class (it imports nothing of codec).
USER_ERRORS = (SpinrError, NetsimError)

# Every command of ``spinr``, in one table: (command path, "module[:attribute]", extra, help). The module
# (or the attribute) has add_arguments(parser) and run(args) -> int. ``extra`` is the pyproject extra
# that brings what the command needs beyond the decoder-only base install ("" for none). A path of two
# words is a subcommand of the first: ``netsim proxy`` sits above netsim (it speaks WebSocket and
# codec packets; netsim imports nothing of the project), so this dispatcher, which may import both,
# hangs it under ``netsim``.
COMMANDS: list[tuple[str, str, str, str]] = [
    ("encode", "client.codec_cmds:encode", "train", "fit an INR to an image and write a .spnr bitstream"),
    ("decode", "client.codec_cmds:decode", "", "decode a .spnr bitstream to PNG (any prefix, any size)"),
    ("info", "client.codec_cmds:info", "", "show a bitstream's header fields and packets"),
    ("eval", "client.codec_cmds:evaluate", "", "PSNR per prefix depth, SSIM, bytes and bpp against a reference"),
    ("meta-train", "client.meta_train", "train", "meta-learn a shared initialisation θ0 (Reptile) and write a .spnri file"),
    ("demo", "client.demo", "train", "encode a real photograph and write every progressive stage as PNG"),
    ("serve", "server.cli", "server", "run the streaming server (FastAPI + uvicorn)"),
    ("upload", "client.upload", "client", "upload an image to a server and wait for its bitstream"),
    ("stream", "client.stream", "client", "stream an image from a server layer by layer, through a simulated channel"),
    ("netsim", "netsim.cli", "", "network channel simulator tools (stats, proxy)"),
    ("netsim proxy", "streaming.proxy", "client", "WebSocket relay applying a channel between a server and its clients"),
    ("experiment", "experiments.cli", "experiments", "run an analysis of the Streaming Neural Images study"),
    ("bench", "benchmarks.cli", "experiments", "run benchmarks and write JSON"),
]  # fmt: skip
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "train": frozenset({"torch", "tqdm"}),
    "server": frozenset({"torch", "tqdm", "fastapi", "pydantic", "starlette", "uvicorn", "uvloop", "multipart", "websockets", "httpx"}),
    "client": frozenset({"websockets", "httpx", "tqdm"}),
    "experiments": frozenset({"torch", "tqdm", "matplotlib", "skimage", "pytorch_msssim"}),
    "ray": frozenset({"ray"}),  # --engine ray of serve and experiment, imported only then
}  # fmt: skip
"""The top-level modules each extra of pyproject.toml brings (tests/test_extras.py keeps them in step),
so a missing module names the extra to install: the command's own when it brings it, else the first
extra that does (``spinr demo`` without an image needs scikit-image, from ``experiments``)."""
STDOUT_CLOSED = 141
"""Exit status when the reader of stdout has gone: 128 + SIGPIPE, what a Unix tool killed by it gives."""
MOVED = {"proxy": "netsim proxy"}
"""Old command names: ``spinr OLD`` says in one line what to type instead."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, as argparse does, without the usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


PROJECT_PACKAGES = {"codec", "client", "server", "netsim", "experiments", "streaming", "benchmarks"}


class MissingExtra(Exception):
    """A third-party module a command needs is not installed; says which extra brings it."""

    def __init__(self, command: str, module: str, extra: str) -> None:
        self.command, self.module, self.extra = command, module, extra
        super().__init__(
            f"{module} is not installed: `spinr {command}` needs the {extra} extra "
            f"(pip install 'spinr[{extra}]'; in a checkout: pip install -c constraints.txt '.[{extra}]')"
        )


def extra_for(module: str, command_extra: str) -> str:
    """The extra to install for a missing top-level ``module``: the command's own if it brings it."""
    if module in EXTRA_MODULES.get(command_extra, ()):
        return command_extra
    return next((e for e, mods in EXTRA_MODULES.items() if module in mods), command_extra or "all")


def _load(target: str) -> Any:
    """Import a subcommand; a ModuleNotFoundError naming the third-party module when one it needs
    is missing; None when that part of spinr is not installed at all.

    A missing *project* module inside an installed one is a bug and is raised, not hidden."""
    module, _, attr = target.partition(":")
    if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
        return None
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in PROJECT_PACKAGES:
            raise
        return exc
    return getattr(mod, attr) if attr else mod


def _subcommands(parser: argparse.ArgumentParser) -> Any:
    """The parser's subcommand action, made on first use (a command module may have made it already)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)


def build_parser() -> argparse.ArgumentParser:
    """Every command of the table; one whose extra is not installed is listed (``needs spinr[EXTRA]``)
    and running it says what to install (``main`` sees ``_missing`` before parsing its options)."""
    parser = _Parser(prog="spinr", description="spinr: a streaming codec for neural images.")
    parser.add_argument("--version", action="version", version=f"spinr {__version__}")
    parsers: dict[str, argparse.ArgumentParser] = {"": parser}
    missing: dict[str, MissingExtra] = {}
    for path, target, extra, help_text in COMMANDS:
        parent, _, name = path.rpartition(" ")
        if parent not in parsers:
            continue
        cmd = _load(target)
        if cmd is None:
            continue  # that part of spinr is not installed at all
        if isinstance(cmd, ModuleNotFoundError):
            module = (cmd.name or "?").split(".")[0]
            missing[path] = MissingExtra(path, module, extra_for(module, extra))
            note = f"{help_text} [needs spinr[{missing[path].extra}]: {module} is not installed]"
            _subcommands(parsers[parent]).add_parser(name, help=note, description=note, add_help=False)
            continue
        p = _subcommands(parsers[parent]).add_parser(name, help=help_text, description=help_text)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run, _extra=extra, _path=path)
        parsers[path] = p
    parser.set_defaults(_missing=missing)
    return parser


def _unavailable(parser: argparse.ArgumentParser, argv: list[str]) -> MissingExtra | None:
    """The missing extra of the command ``argv`` starts with, if that command could not be loaded."""
    missing: dict[str, MissingExtra] = parser.get_default("_missing") or {}
    words = [a for a in argv[:2] if not a.startswith("-")]
    for n in (2, 1):
        if " ".join(words[:n]) in missing:
            return missing[" ".join(words[:n])]
    return None


def _stdout_closed() -> bool:
    """Whether stdout is a pipe (or socket) whose reader has gone, as with ``spinr info | head``."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return False
    if not hasattr(select, "poll"):
        return True  # no way to ask (Windows): a broken pipe there is the reader's doing
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not complain either."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in MOVED:
        print(f"spinr {argv[0]}: this command is now `spinr {MOVED[argv[0]]}`", file=sys.stderr)
        return 2
    parser = build_parser()
    unavailable = _unavailable(parser, argv)
    if unavailable is not None:
        print(f"spinr {unavailable.command}: error: {unavailable}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        code = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed stdout shows here, not in the interpreter's flush at exit
        return code
    except USER_ERRORS as exc:
        print(f"spinr {args._path}: error: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"spinr {args._path}: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 1
    except OSError as exc:
        if isinstance(exc, BrokenPipeError) and _stdout_closed():
            _quiet_stdout()  # the reader of our output has gone (``| head``): stop quietly, as Unix tools do
            return STDOUT_CLOSED
        print(f"spinr {args._path}: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        module = (exc.name or "").split(".")[0]
        if not module or module in PROJECT_PACKAGES:
            raise
        print(
            f"spinr {args._path}: error: {MissingExtra(args._path, module, extra_for(module, args._extra))}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"spinr {args._path}: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())

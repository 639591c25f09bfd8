"""Where a command writes, checked before it does any work; one rule for every command that writes.

The rule (README, "Output files and folders"): a missing folder on the way to an output is created,
as ``mkdir -p`` does, and the command says so on stderr; a path that cannot be written (a file where
a folder must be, a folder where the file must be, no permission, a read-only file system) is an
error naming the path and the flag, before any training, download or decode starts.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from codec.errors import ConfigError


def output_file(path: str | os.PathLike[str], flag: str, quiet: bool = False) -> Path:
    """Check that ``path`` can be written as a file (creating its folder); the path, unchanged."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{flag} {str(target)!r} is a folder; give the file to write")
    _writable_folder(target.parent if str(target.parent) else Path("."), flag, target, quiet)
    return target


def output_folder(path: str | os.PathLike[str], flag: str, quiet: bool = False) -> Path:
    """Check that ``path`` is (or can be made) a folder that can be written into; the path."""
    target = Path(path)
    _writable_folder(target, flag, target, quiet)
    return target


def _writable_folder(folder: Path, flag: str, asked: Path, quiet: bool) -> None:
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            raise ConfigError(f"{flag} {str(asked)!r}: {str(part)!r} is a file, not a folder")
        if part.exists():
            break
    if not folder.exists():
        try:
            folder.mkdir(parents=True)
        except FileExistsError:  # made meanwhile by someone else: fine if it is a folder
            if not folder.is_dir():
                raise ConfigError(f"{flag} {str(asked)!r}: {str(folder)!r} is not a folder") from None
        except OSError as exc:
            raise ConfigError(
                f"{flag} {str(asked)!r}: cannot create the folder {str(folder)!r}: {exc.strerror or exc}"
            ) from None
        if not quiet:
            print(f"spinr: created folder {folder}", file=sys.stderr)
    # Permissions alone do not say it (root, read-only mounts, ACLs): try to write a file there.
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".spinr-write-check.")
    except OSError as exc:
        raise ConfigError(
            f"{flag} {str(asked)!r}: cannot write in {str(folder)!r}: {exc.strerror or exc}"
        ) from None
    os.close(fd)
    os.unlink(probe)

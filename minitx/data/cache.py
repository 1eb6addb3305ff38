"""Where downloaded and generated data is kept, and how every file of minitx gets to disk safely.

The cache folder is, in order of precedence: the ``cache_dir=`` argument of a loader, the
environment variable ``MINITX_CACHE``, or ``~/.cache/minitx``.

:func:`atomic_write` is the one writer of the package: the cache, the generated datasets and
the checkpoints of :mod:`minitx.serialization` all go through it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

CACHE_ENV_VAR = "MINITX_CACHE"
STALE_AFTER_S = 24 * 3600  # a temporary nobody wrote to for a day is abandoned, whoever owns it
_TEMP_SUFFIX = re.compile(r"\.(\d+)-[0-9a-f]{8}\.tmp")  # <target>.<pid>-<8 hex digits>.tmp


def cache_root(override: str | os.PathLike | None = None) -> Path:
    """Return the cache folder (not created here; writers create what they need).

    Args:
        override: an explicit folder, which wins over ``MINITX_CACHE`` and the default.
    """
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "minitx"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write a file so that readers see the old file or the whole new one, never half of one.

    ``write(file)`` fills a temporary file ``<path>.<pid>-<hex>.tmp`` in the same folder; it is
    forced to disk (``fsync``) and renamed onto `path` by ``os.replace``, which is atomic. An
    exception (a full disk, Ctrl-C) removes the temporary. A killed process cannot, so each
    write first removes the temporaries of the same target whose writer is gone
    (:func:`remove_stale_temporaries`). The folder is created if needed; the file's mode is
    0o666 minus the umask, as for ``open``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)  # first: a disk filled by dead writers has room again
    temp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "xb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the name points at them
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` with :func:`atomic_write`."""
    atomic_write(path, lambda file: file.write(data))


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries that killed writers of `path` left behind; return them.

    Only names of the form ``<path>.<pid>-<hex>.tmp`` are considered, so the temporaries of
    other files in the folder are never touched. One is stale when its writer process no longer
    exists (POSIX), or when nothing wrote to it for `STALE_AFTER_S` (its process id may have
    been reused, or the system cannot tell). A live writer's temporary is left alone.
    """
    path, removed = Path(path), []
    for temp in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
        match = _TEMP_SUFFIX.fullmatch(temp.name[len(path.name):])
        if match is None:
            continue
        with contextlib.suppress(OSError):  # gone already, or another writer cleans it up
            idle_s = time.time() - temp.stat().st_mtime
            if idle_s > STALE_AFTER_S or not _process_exists(int(match[1])):
                temp.unlink()
                removed.append(temp)
    return removed


def _process_exists(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":  # elsewhere os.kill(pid, 0) would end it
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True

"""Where downloaded and generated data is kept, and how files get there safely.

The cache folder is, in order of precedence: the ``cache_dir=`` argument of a loader, the
environment variable ``MINITX_CACHE``, or ``~/.cache/minitx``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

CACHE_ENV_VAR = "MINITX_CACHE"


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one.

    The bytes go to a temporary file in the same folder, which then replaces ``path`` in one
    ``os.replace``; an interrupted run therefore never leaves a half-written file behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise

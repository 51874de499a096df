"""Atomic file writes: either the whole new file is there, or the old one is untouched.

One helper for every module that writes results (eval runs, export manifests, training cards, HTML pages):
a temp file in the same folder, flushed (and fsynced when asked), given the mode an ordinary write would give
(an existing file keeps its mode, a new one gets 0666 minus the umask, not mkstemp's 0600), then `os.replace`.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def _default_mode(path: Path) -> int:
    if path.exists():
        return stat.S_IMODE(path.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: str | os.PathLike[str], data: str | bytes, fsync: bool = False) -> Path:
    """Write `data` (text as UTF-8 with "\\n" line ends, or bytes) to `path` atomically; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = _default_mode(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target

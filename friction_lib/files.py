"""Files and folders the tool writes: atomic files, staged output folders, one writer per folder, safe paths.

The rules every command with an output folder follows (export, eval, train, train select, publish, data push):
- `write_atomic`: a file is either wholly new or untouched (temp file in the same folder, then `os.replace`).
- `staged_folder`: a run writes into a hidden sibling `.NAME.partial-PID-…` and only a complete run is renamed
  into place; a failed run leaves no finished-looking folder.
- `check_output_folder`: `--overwrite` replaces only a folder the tool made (it carries `MARKER`), and never
  the current directory, the repository root, the home folder or a parent of any of them.
- `output_lock`: one writer per output folder; a second one is told "in use by PID N".
- `inside`: a path read from a file (a manifest, a card, a config) is data: it must resolve inside its own
  folder, or it is refused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError

MARKER = ".friction-output.json"  # written into every output folder the tool makes
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def new_file_mode() -> int:
    """The mode an ordinary write gives a new file: 0666 minus the umask (mkstemp and safetensors give 0600)."""
    return 0o666 & ~_umask()


def _default_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode) if path.exists() else new_file_mode()


def write_atomic(path: str | os.PathLike[str], data: str | bytes, fsync: bool = False) -> Path:
    """Write `data` (text as UTF-8 with "\\n" line ends, or bytes) to `path` atomically; returns the path.

    The new file gets the mode an ordinary write would give (an existing file keeps its mode, a new one gets
    0666 minus the umask, not mkstemp's 0600).
    """
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


def write_json(path: str | os.PathLike[str], data: object) -> Path:
    """`write_atomic` of indented JSON (UTF-8, a final newline)."""
    return write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- reading


def read_yaml_mapping(path: Path, empty_ok: bool = False) -> dict[str, Any]:
    """A YAML file whose top level is `key: value` pairs; bad YAML is an error with `file:line`."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise FrictionError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise FrictionError(
            f"{where}: not valid YAML ({getattr(exc, 'problem', exc)}). Fix the indentation or quoting."
        ) from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise FrictionError(
            f"{path}: expected `key: value` pairs at the top level, got a {type(data).__name__}."
        )
    return data


# --------------------------------------------------------------------------- disk space


def size_text(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


def check_disk_space(folder: str | os.PathLike[str], need: int, what: str, fix: str) -> int:
    """Raise before any work when the disk that will hold `folder` has less than `need` bytes free.

    Returns the free bytes. `what` names what needs the room, `fix` says what to do about it.
    """
    probe = Path(folder)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise FrictionError(
            f"Not enough disk space for {what}: about {size_text(need)} needed, {size_text(free)} free at "
            f"{probe} ({need:,} and {free:,} bytes). {fix}"
        )
    return free


# --------------------------------------------------------------------------- paths read from files


def inside(folder: str | os.PathLike[str], relative: str | os.PathLike[str], source: str = "") -> Path:
    """`folder / relative`, refused unless it stays inside `folder` once symlinks are followed.

    A path read from a manifest is data, not an instruction: absolute paths, `..` and symlinks that leave the
    folder raise a FrictionError naming `source` (the file the path came from).
    """
    base = Path(folder).resolve()
    rel = Path(relative)
    where = f" in {source}" if source else ""
    if rel.is_absolute() or ".." in rel.parts or str(relative) in ("", "."):
        raise FrictionError(
            f"Refused the path {str(relative)!r}{where}: paths in a manifest must name a file inside {base} "
            "(no absolute paths, no '..'). Rewrite the manifest with the tool that made it."
        )
    resolved = (base / rel).resolve()
    if not resolved.is_relative_to(base):
        raise FrictionError(
            f"Refused the path {str(relative)!r}{where}: it is a symlink that leads out of {base} "
            f"(to {resolved}). Replace the link with the file itself."
        )
    return resolved


# --------------------------------------------------------------------------- output folders


def _protected(folder: Path) -> str | None:
    """Why `folder` must never be replaced, or None."""
    from friction_lib.models import repo_root

    places = {"the current directory": Path.cwd(), "your home folder": Path.home()}
    root = repo_root()
    if root is not None:
        places["the repository root"] = root
    target = folder.resolve()
    for what, place in places.items():
        place = place.resolve()
        if target == place:
            return f"it is {what}"
        if place.is_relative_to(target):
            return f"it holds {what} ({place})"
    return None


def made_by_tool(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / MARKER).is_file()


def check_output_folder(out: str | os.PathLike[str], overwrite: bool, command: str) -> None:
    """May `command` write its output to `out`? Missing or empty: yes. Else only with `overwrite`, only if
    the tool made it (MARKER), and never the current directory, the repo root, home or a parent of those."""
    folder = Path(out)
    why = _protected(folder)
    if why is not None:
        raise FrictionError(
            f"--out {folder}: {why}, so `{command}` will not write there. Choose a new folder."
        )
    if folder.exists() and not folder.is_dir():
        raise FrictionError(f"--out {folder} is a file, not a folder. Choose another --out.")
    if not folder.exists() or not any(folder.iterdir()):
        return
    if not overwrite:
        raise FrictionError(
            f"--out {folder} already exists. Pass --overwrite to replace it, or choose another --out."
        )
    if not made_by_tool(folder):
        raise FrictionError(
            f"--out {folder} was not made by friction (it has no {MARKER}), so --overwrite will not delete it. "
            "Move or delete it yourself, or choose another --out."
        )


def mark_output(folder: str | os.PathLike[str], command: str) -> Path:
    """Write the tool's marker into a folder it made (what `--overwrite` later checks for)."""
    return write_json(
        Path(folder) / MARKER, {"made_by": f"friction {command}", "pid": os.getpid(), "created": time.time()}
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def stale_partials(parent: str | os.PathLike[str], name: str | None = None) -> list[tuple[Path, int]]:
    """Staging folders (`.NAME.partial-PID-…`) left by runs whose process is gone: (path, bytes)."""
    found: list[tuple[Path, int]] = []
    folder = Path(parent)
    if not folder.is_dir():
        return found
    for path in folder.iterdir():
        match = _PARTIAL.match(path.name)
        if not match or not path.is_dir() or (name is not None and match["name"] != name):
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not _pid_alive(pid):
            found.append((path, _size(path)))
    return found


def remove_stale_partials(
    parent: str | os.PathLike[str], name: str | None = None, quiet: bool = False
) -> int:
    """Remove what `stale_partials` finds, saying what and how big; returns the bytes freed."""
    freed = 0
    for path, size in stale_partials(parent, name):
        shutil.rmtree(path, ignore_errors=True)
        freed += size
        if not quiet:
            print(f"Removed {path.name}, an unfinished run's staging folder ({size / 2**20:.1f} MB).")
    return freed


@contextlib.contextmanager
def output_lock(out: str | os.PathLike[str], command: str) -> Iterator[None]:
    """One writer per output folder: a lock file `.NAME.lock` beside it, holding the writer's PID.

    The lock is an flock, so it goes with the process even when it is killed; a second writer is refused
    with the first one's PID.
    """
    folder = Path(out).resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_path = folder.parent / f".{folder.name}.lock"
    handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise FrictionError(
                f"--out {folder} is in use by PID {holder}. Wait for that run to finish, or choose another --out."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} (friction {command})")
        handle.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            handle.seek(0)
            handle.truncate()
        handle.close()


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike[str], command: str, overwrite: bool = False) -> Iterator[Path]:
    """Write a whole output folder, then move it into place: `with staged_folder(out, "export") as tmp:`.

    Checks `out` first (`check_output_folder`), holds `output_lock`, removes staging folders that dead runs
    left beside it, writes into a fresh `.NAME.partial-PID-…` sibling that carries the tool's marker, and on
    success swaps it in (the old folder, if any, is removed only after the new one is in place). On any error
    the staging folder is removed and `out` is as it was.
    """
    target = Path(out).resolve()
    check_output_folder(target, overwrite, command)
    target.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(target, command):
        remove_stale_partials(target.parent, target.name)
        check_output_folder(target, overwrite, command)  # again, now that no one else writes
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-{os.getpid()}-", dir=target.parent))
        try:
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would make the finished folder private
            mark_output(tmp, command)
            yield tmp
            if target.exists():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

"""Writing the user's outputs: whole or not at all, never onto a device, and one clear line when the disk says no.

Every command that writes (bench, validate, build, convert, train, distill, gen, flash --port sim, monitor --log)
goes through here, so they share one discipline:

- checked up front (``check_file``/``check_dir``): a target that exists and is not a regular file (a device such
  as /dev/null or /dev/full, a FIFO, /dev/stdout, a folder) is refused before any work starts, and so is a
  folder that cannot be written (read-only, no permission, a file in the way) or a file system without room;
- written to a temporary file in the target's own folder and renamed over the target only when whole
  (``atomic_write``); several files that belong together are all staged first and then swapped, and a failure
  while swapping puts the old ones back (``write_all``);
- an OSError becomes a UserError naming the path, what the system said and what to do (exit code 2).

Root ignores permission bits but not read-only mounts, so the checks ask the kernel (``os.access``) rather
than reading mode bits.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .errors import UserError

ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or write somewhere else",
    errno.EDQUOT: "the disk quota is used up: free some space or write somewhere else",
    errno.EFBIG: "the file is too large for this file system: write somewhere else",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.EACCES: "no permission: write somewhere else or fix the folder's permissions",
    errno.EPERM: "not permitted: write somewhere else or fix the folder's permissions",
    errno.ENOENT: "a folder on the way does not exist: create it or write somewhere else",
    errno.ENOTDIR: "a part of the path is a file, not a folder: pick another path",
    errno.EISDIR: "it is a folder: name a file instead",
    errno.ENAMETOOLONG: "the name is too long: pick a shorter path",
    errno.EIO: "the device reported an I/O error: check the disk, or write somewhere else",
    errno.EMFILE: "too many open files: close some programs and try again",
}


# Kernel file systems: their "regular files" (/proc/self/fd/1 -> a redirected stdout) are not outputs to replace.
SPECIAL = ("/dev/", "/proc/", "/sys/")


def advice(exc: OSError) -> str:
    return ADVICE.get(exc.errno or 0, "check the path and try again")


def describe(exc: OSError, path: str | Path | None = None, verb: str = "write", flag: str | None = None) -> str:
    """One line for an OSError on the user's path: what failed, what the system said, what to do."""
    where = path if path is not None else exc.filename
    reason = exc.strerror or str(exc)
    hint = advice(exc) + (f" (pass another {flag})" if flag else "")
    return f"cannot {verb} {where}: {reason}; {hint}." if where is not None else f"{reason}; {hint}."


def _hops(p: Path) -> list[str]:
    """Every path a chain of links leads through, each with its folder resolved: /dev/stdout, /proc/self/fd/1,
    but not the magic link's own target (a redirected stdout's file), which would look like any other file."""
    out, cur = [], p.absolute()
    for _ in range(40):
        out += [os.path.normpath(cur), os.path.join(os.path.realpath(cur.parent), cur.name)]
        if not cur.is_symlink():
            break
        nxt = Path(os.readlink(cur))
        cur = nxt if nxt.is_absolute() else cur.parent / nxt
    return out


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _existing_ancestor(folder: Path) -> Path:
    p = folder.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_folder(folder: Path, target: Path, flag: str | None, need_bytes: int) -> None:
    """The folder that will hold ``target`` (or its nearest existing ancestor, where it will be created) must be
    a writable folder with at least ``need_bytes`` free."""
    base = _existing_ancestor(folder)
    shown = f"{flag} {target}" if flag else str(target)
    if not base.is_dir():
        raise UserError(f"cannot write {shown}: {base} is a file, not a folder; pick another path.")
    if not os.access(base, os.W_OK | os.X_OK):
        try:  # access() says only "no"; statvfs tells a read-only mount from missing permission
            ro = bool(os.statvfs(base).f_flag & os.ST_RDONLY)
        except OSError:
            ro = False
        why = f"{base} is on a read-only file system; write somewhere else" if ro else \
            f"no permission to write in {base}; write somewhere else or fix the folder's permissions"
        raise UserError(f"cannot write {shown}: {why}.")
    if need_bytes > 0:
        try:
            st = os.statvfs(base)
        except OSError:
            return
        free = st.f_bavail * st.f_frsize
        if free < need_bytes:
            raise UserError(f"cannot write {shown}: only {free:,} bytes free on the file system of {base}, "
                            f"at least {need_bytes:,} needed; free some space or write somewhere else.")


def check_file(path: str | Path, flag: str | None = None, need_bytes: int = 1) -> Path:
    """Up-front check of one output file; returns the path to write (a symlink to a regular file is followed,
    so the link survives). UserError when the target is not a regular file or its folder cannot take it."""
    p = Path(path)
    shown = f"{flag} {p}" if flag else str(p)
    try:
        st = os.stat(p)  # follows links: /dev/stdout -> /proc/self/fd/1 -> a pipe or a terminal
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise UserError(f"cannot write {shown}: a part of the path is a file, not a folder; pick another path.") \
            from None
    except OSError as exc:
        raise UserError(describe(exc, p, flag=flag)) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UserError(f"refusing to write {shown}: it is {_kind(st.st_mode)}, not a regular file; "
                        f"name a file to create or replace.")
    special = next((h for h in _hops(p) if h.startswith(SPECIAL) and not h.startswith("/dev/shm/")), None)
    if special is not None:
        raise UserError(f"refusing to write {shown}: it is a device or a stream ({special}), not a regular file; "
                        f"name a file to create or replace.")
    if st is not None and p.is_symlink():
        p = Path(os.path.realpath(p))
    _check_folder(p.parent, p, flag, need_bytes)
    return p


def check_dir(path: str | Path, flag: str | None = None, files: tuple[str, ...] = (), need_bytes: int = 1) -> Path:
    """Up-front check of an output folder and the files that will be written into it."""
    p = Path(path)
    shown = f"{flag} {p}" if flag else str(p)
    if p.exists() and not p.is_dir():
        raise UserError(f"cannot write into {shown}: it is not a folder; pass a folder.")
    for name in files:
        check_file(p / name, flag, 0)
    _check_folder(p, p, flag, need_bytes)
    return p


def check_log(path: str | Path, flag: str | None = "--log") -> Path:
    """A file opened for appending (monitor --log): the same refusals, and never a FIFO (open would block)."""
    return check_file(path, flag)


def _mode_for(target: Path) -> int:
    """A replaced file keeps its mode; a new one gets 0666 less the umask (0644 under the usual 022). Exactly 0600 is
    the mode earlier yamflash builds left on every output (mkstemp's): such a file gets the new-file mode, so old
    outputs become readable by others again instead of staying private forever."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
        if mode != 0o600:
            return mode
    except OSError:
        pass
    mask = os.umask(0)  # the only portable way to read the umask
    os.umask(mask)
    return 0o666 & ~mask


def _stage(target: Path, data: bytes) -> Path:
    """The content in a temporary file beside ``target`` (same file system, so the rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), _mode_for(target))
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_all(files: Mapping[str | Path, bytes | str], flag: str | None = None) -> list[Path]:
    """Write several files as one output: every file is staged before any target is replaced, so a full disk or
    a read-only folder leaves the previous set whole. Returns the paths written."""
    items = [(check_file(p, flag, 0), d.encode() if isinstance(d, str) else bytes(d)) for p, d in files.items()]
    staged: list[tuple[Path, Path]] = []
    target = items[0][0] if items else Path()
    try:
        for target, data in items:
            staged.append((_stage(target, data), target))
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        left = " Nothing was replaced." if len(items) > 1 else ""
        raise UserError(describe(exc, target, flag=flag) + left) from None
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    _swap(staged, flag)
    return [t for _, t in staged]


def _swap(staged: list[tuple[Path, Path]], flag: str | None) -> None:
    """Rename every staged file over its target; on a failure put back what was there before."""
    backups: dict[Path, Path] = {}
    done: list[Path] = []
    try:
        if len(staged) > 1:  # one file needs no backup: a failed rename leaves the old one in place
            for _, target in staged:
                if target.exists():
                    bak = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
                    with contextlib.suppress(OSError):  # no hard links here: roll back what we can
                        os.link(target, bak)
                        backups[target] = bak
        for tmp, target in staged:
            os.replace(tmp, target)
            done.append(target)
    except OSError as exc:
        for target in done:
            with contextlib.suppress(OSError):
                if target in backups:
                    os.replace(backups.pop(target), target)
                else:
                    target.unlink()
        raise UserError(describe(exc, staged[len(done)][1], flag=flag)
                        + (" The previous files were put back." if len(staged) > 1 else "")) from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        for bak in backups.values():
            bak.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes | str, flag: str | None = None) -> Path:
    """Write one file whole or not at all (temporary file beside it, then rename); UserError on any OSError."""
    return write_all({path: data}, flag)[0]

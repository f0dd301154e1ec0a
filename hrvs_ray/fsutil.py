"""Write a file so that no reader ever sees half of it, with the permissions a user expects;
and a folder private to this user.

Pure (standard library). Every write-to-temporary-then-rename in hrvs-ray goes through
``atomic_write``: results, reports, synthetic images, prepared arrays, digest caches.
Every per-user folder under a shared temp dir goes through ``private_dir``.

Why not ``tempfile.mkstemp``: it creates the file 0600 whatever the umask, and the rename
keeps that mode, so results in a group-shared project folder became unreadable to the
group. Here the temporary file is created with ``os.open(..., 0o666)``, so the kernel
applies the process umask (and any default ACL of the folder) exactly as for a plain
``open(path, "w")``: umask 022 gives 0644, 027 gives 0640. No umask is read or changed
(``os.umask`` can only be read by setting it, which would race with other threads).
"""
from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path


def _temp_name(path: Path) -> Path:
    # unique per process and call: several processes on several nodes may write one path
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None], fsync: bool = False) -> Path:
    """Create a temporary file beside ``path`` (mode 0666 & ~umask), let ``writer(tmp)``
    fill it, optionally fsync it, and rename it onto ``path``. The temporary file is
    removed if anything fails; the error propagates. Returns ``path``."""
    path = Path(path)
    tmp = _temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    try:
        writer(tmp)
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = False) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), fsync)


def atomic_write_text(path: str | os.PathLike, text: str, fsync: bool = False) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), fsync)


def private_dir(base: str | os.PathLike, name: str) -> Path | None:
    """``base/name-UID``, created mode 700, or None when it cannot be made, is a symlink, or
    is not ours alone: in a world-writable /tmp someone else could pre-create it and plant files (a
    false digest, a socket that takes our pickles)."""
    d = Path(base) / f"{name}-{os.getuid()}"
    try:
        d.mkdir(mode=0o700, exist_ok=True)
        st = d.lstat()      # not stat(): a planted symlink must not lend us someone's folder
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return d

"""Content hashes of a dataset's files, read again only for the files that changed.

A folder dataset's cache key hashes the content of every file (:func:`ggo.data.folder.folder_digest`),
so an edited mask always gives a new cache. Hashing 35,000 films' worth of files at every run start
would read tens of gigabytes; instead each file's SHA-256 is kept in ``<cache_dir>/file-hashes/``
beside its size, modification time and status-change time (``st_ctime``), and a file is read again
only when one of those changed. The status-change time is set by the kernel on every write and
every ``touch``, so an edit that keeps the file's size and puts its old modification time back
(``os.utime``, ``cp -p``, ``rsync -t``) is still noticed: the same rule git's index uses.

No library fits: ``dirhash`` and ``checksumdir`` hash every byte every time, and a build system's
stat cache (``doit``, ``make``) would bring its whole task model for one table.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

STORE_DIR = "file-hashes"  # under the cache dir
STORE_VERSION = 1


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _signature(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def store_path(store_dir: Path, root: Path) -> Path:
    """Where the hashes of the dataset at ``root`` are kept: one JSON file per dataset folder."""
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return store_dir / f"{key}.json"


def _load(path: Path, root: Path) -> dict[str, list]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: every file is hashed again, and the store rewritten
    if not isinstance(data, dict) or data.get("version") != STORE_VERSION or data.get("root") != str(root.resolve()):
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _save(path: Path, root: Path, files: dict[str, list]) -> None:
    """Write the store in one step (a concurrent reader sees the old one or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": STORE_VERSION, "root": str(root.resolve()), "files": files}, handle, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def content_hashes(root: Path, files: Iterable[str], store_dir: Path | None = None) -> dict[str, str]:
    """``{path: SHA-256 of its content}`` for ``files``, paths relative to ``root`` (``/``-separated).

    With ``store_dir`` the hashes of the files whose size, modification time and status-change
    time are those recorded there are taken from it, the others are read and the store updated;
    without one every file is read.
    """
    store = store_path(store_dir, root) if store_dir is not None else None
    known = _load(store, root) if store is not None else {}
    fresh: dict[str, list] = {}
    hashes: dict[str, str] = {}
    base = os.fspath(root)
    for rel in files:
        path = os.path.join(base, rel)
        signature = _signature(os.stat(path))
        entry = known.get(rel)
        digest = entry[3] if isinstance(entry, list) and len(entry) == 4 and entry[:3] == signature else file_sha256(Path(path))
        fresh[rel] = [*signature, digest]
        hashes[rel] = digest
    if store is not None and fresh != known:
        try:
            _save(store, root, fresh)
        except OSError:
            pass  # a read-only cache dir: the key is still right, the next start just hashes again
    return hashes

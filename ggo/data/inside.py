"""Paths that come from data stay inside their folder.

A dataset names its own files (``structure.csv``'s ``Filename`` and ``Mask`` columns) and may hold
symbolic links (a cloned repository can). Read as given, ``../../etc/passwd``, an absolute path or
a link to ``~/.ssh`` would make the reader open, and ``export`` copy, files from anywhere the user
can read. :func:`resolve_inside` refuses them: the path, symbolic links resolved, must lie under
the folder it is relative to. The top folder itself (``images/``, ``masks/``) may be a link, to
another disk say: it is resolved first, and the file must lie under where it points.
"""

from __future__ import annotations

import os
from pathlib import Path


class OutsideFolderError(ValueError):
    """A path from data that points outside the folder it must stay in; the message names both."""


def is_inside(path: Path, folder: Path) -> bool:
    """Does ``path`` (links resolved) lie under ``folder`` (links resolved)?"""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def resolve_inside(root: Path, relative: str, *, what: str) -> Path:
    """``root / relative``, or :class:`OutsideFolderError` naming ``what`` (where the value came
    from) when ``relative`` is absolute, climbs out with ``..``, or leads out through a link.

    The file is checked against the first folder of ``relative`` (``masks/a.png``: ``root/masks``),
    which may itself be a link; a file directly in ``root`` against ``root``.
    """
    text = str(relative)
    normal = os.path.normpath(text)
    if os.path.isabs(text) or normal == ".." or normal.startswith(".." + os.sep) or normal == ".":
        raise OutsideFolderError(f"{what}: {text!r} points outside {root}: give a path relative to that folder, inside it")
    first = normal.split(os.sep, 1)[0]
    folder = root / first if os.sep in normal else root
    path = root / normal
    if not is_inside(path, folder):
        raise OutsideFolderError(
            f"{what}: {text!r} is a link that leads outside {folder} (to {path.resolve()}): copy the file in instead"
        )
    return path


__all__ = ["OutsideFolderError", "is_inside", "resolve_inside"]

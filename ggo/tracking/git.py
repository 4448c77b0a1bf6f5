"""The state of the project checkout, recorded on every run."""

from __future__ import annotations

import subprocess

from ggo.paths import project_root


def git_state() -> dict[str, str]:
    """``ggo.git_commit`` and ``ggo.git_dirty`` of the project checkout (empty when not a checkout)."""
    root = project_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"ggo.git_commit": commit, "ggo.git_dirty": str(bool(dirty)).lower()}

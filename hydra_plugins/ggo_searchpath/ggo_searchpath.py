"""Make the project's ``sweeps/`` presets a config group from any working directory.

``python -m ggo.train -m +sweeps=generators`` finds ``<project>/sweeps/generators.yaml`` because
this plugin appends the project root to Hydra's search path (``hydra.searchpath: [file://...]``
would resolve relative to the current directory instead).
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from ggo.paths import project_root


class GgoSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        sweeps = project_root() / "sweeps"
        if sweeps.is_dir():
            search_path.append(provider="ggo-sweeps", path=f"file://{project_root()}")

"""``python -m ggo.data fetch|prepare|show|export [overrides]``: get the dataset, build the cache,
preview it, or write it in the folder layout (``export --format folder --out DIR``).

The action is the first word; the rest are Hydra overrides of ``conf/data_cli.yaml`` (which pulls
in the ``data`` and ``preprocess`` groups), e.g.
``python -m ggo.data prepare data=synthetic preprocess=res128 data.seed=1``.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ggo
from ggo.paths import DATASET_DIRNAME, default_data_root, project_root

ACTIONS = {
    "fetch": "git clone the dataset into <project>/data/" + DATASET_DIRNAME,
    "prepare": "build (or reuse) the preprocessed cache and print its summary",
    "show": "write a PNG grid of the cached images with GGO (red) and lung (green) contours",
    "export": "write the dataset in the folder layout (--format folder --out DIR): what data=folder reads",
}


def conf_dir() -> Path:
    """The project's ``conf/`` folder (beside the ``ggo`` package)."""
    return Path(ggo.__file__).resolve().parent.parent / "conf"


def _options(group: str) -> str:
    folder = conf_dir() / group
    return ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) if folder.is_dir() else "?"


def _parser() -> argparse.ArgumentParser:
    actions = "\n".join(f"  {name:<9}{text}" for name, text in ACTIONS.items())
    epilog = f"""actions:
{actions}

overrides (Hydra syntax, config conf/data_cli.yaml):
  data=<{_options('data')}>    preprocess=<{_options('preprocess')}>
  data.root=PATH  data.cache_dir=PATH  data.seed=N  data.folds=N  data.test_fraction=F  data.workers=N
  preprocess.resolution=N  preprocess.fit=pad|stretch  preprocess.clahe=true
  out=PATH (show: the PNG)  max_images=N  tile=N  url=URL (fetch)

data=folder data.root=DIR reads your own X-rays: DIR/images/, DIR/masks/ (one per image, same
file stem), optional DIR/lungs/ and DIR/patients.csv (image, patient). 'prepare' checks and audits it.

data.root null means $GGO_DATA, else <project>/data/{DATASET_DIRNAME};
data.cache_dir null means $GGO_CACHE, else <project>/data/cache.

examples:
  python -m ggo.data fetch
  python -m ggo.data prepare preprocess=res256
  python -m ggo.data prepare data=synthetic preprocess=res128 data.seed=1
  python -m ggo.data show out=data/preview.png
  python -m ggo.data export --format folder --out ../ggo-folder
  python -m ggo.data prepare data=folder data.root=../ggo-folder
"""
    parser = argparse.ArgumentParser(
        prog="python -m ggo.data",
        description="Get the GGO dataset, build the preprocessed cache, or preview it.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=list(ACTIONS), help="what to do: " + ", ".join(ACTIONS))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides such as data=synthetic preprocess=res128")
    parser.add_argument("--format", dest="format", choices=("folder",), default="folder", help="export: the layout to write")
    parser.add_argument("--out", dest="export_out", metavar="DIR", default=None, help="export: the folder to create")
    parser.add_argument("--workers", type=_workers, metavar="N", default=None,
                        help="prepare, show: processes that decode and preprocess the films (0: one per core, the "
                        "default; the same as data.workers=N)")  # fmt: skip
    return parser


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0 (0: one per core), got {text!r}")
    return value


def compose_config(action: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """conf/data_cli.yaml with ``overrides`` applied, as a plain dict."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3", job_name="ggo.data"):
        cfg = compose(config_name="data_cli", overrides=[*overrides, f"action={action}"])
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def fetch(cfg: dict[str, Any]) -> int:
    """Clone the dataset under the project root; a clear message and exit 1 when that fails."""
    target = project_root() / "data" / DATASET_DIRNAME
    if (target / "structure.csv").is_file():
        print(f"the dataset is already at {target}")
        return 0
    chosen = os.environ.get("GGO_DATA")
    if chosen and (Path(chosen) / "structure.csv").is_file():
        print(f"GGO_DATA={chosen} holds the dataset: nothing to fetch (unset GGO_DATA to clone into {target})")
        return 0
    if target.exists() and any(target.iterdir()):
        print(
            f"error: {target} exists but holds no structure.csv; move it away and run fetch again, "
            "or set GGO_DATA to a complete copy",
            file=sys.stderr,
        )
        return 1
    url = cfg["url"]
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    print(f"cloning {url} into {target} ...", flush=True)
    try:
        subprocess.run(["git", "clone", "--depth", "1", "--", url, str(partial)], check=True)  # `--`: a URL is never an option
    except (OSError, subprocess.CalledProcessError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        lines = [
            f"error: could not clone {url} into {target} ({exc}).",
            "If this machine is offline, copy the dataset (images/, masks/, structure.csv, metadata.csv) "
            "somewhere and set GGO_DATA=/path/to/that/folder.",
        ]
        existing = default_data_root()
        if (existing / "structure.csv").is_file():
            lines.append(f"A dataset already exists at {existing} (GGO_DATA): prepare and show will use it.")
        print("\n".join(lines), file=sys.stderr)
        return 1
    if target.exists():
        target.rmdir()  # empty, checked above
    os.rename(partial, target)
    print(f"dataset ready at {target}")
    return 0


def prepare(cfg: dict[str, Any]) -> int:
    """Build or reuse the cache and print its summary."""
    from ggo.data.audit import format_summary
    from ggo.data.sources import prepare_from_config

    cache = prepare_from_config(cfg["data"], cfg["preprocess"], progress=True)
    print(format_summary(cache.summary))
    print(f"cache ready: {cache.path}")
    return 0


def preview_grid(cache: Any, max_images: int = 100, tile: int = 256) -> Any:
    """A BGR uint8 grid of the cached images: GGO contours red, lung contours green, and a label
    band (name, patient, split, flags) above each tile."""
    import cv2
    import numpy as np

    images = np.load(cache.path / "images.npy", mmap_mode="r")
    masks = np.load(cache.path / "masks.npy", mmap_mode="r")
    lungs = np.load(cache.path / "lungs.npy", mmap_mode="r")
    manifest = cache.manifest
    n = min(len(manifest), max(1, int(max_images)))
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    band = 40
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.36
    chars = max(8, int(tile / 6.2))
    grid = np.zeros((rows * (tile + band), cols * tile, 3), np.uint8)
    thickness = 2 if tile >= 384 else 1
    for i in range(n):
        img = ((np.asarray(images[i, :, :, 0], np.float32) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
        ggo = np.asarray(masks[i, :, :, 0], np.uint8)
        lung = np.asarray(lungs[i, :, :, 0], np.uint8)
        if img.shape[0] != tile:
            img = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)
            ggo = cv2.resize(ggo, (tile, tile), interpolation=cv2.INTER_NEAREST)
            lung = cv2.resize(lung, (tile, tile), interpolation=cv2.INTER_NEAREST)
        bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        for mask, colour in ((lung, (0, 200, 0)), (ggo, (0, 0, 255))):
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(bgr, contours, -1, colour, thickness)
        row = manifest.iloc[i]
        y0, x0 = (i // cols) * (tile + band), (i % cols) * tile
        grid[y0 + band : y0 + band + tile, x0 : x0 + tile] = bgr
        name = str(row["name"])
        name = name if len(name) <= chars else name[: chars - 3] + "..."
        cv2.putText(grid, name, (x0 + 3, y0 + 11), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
        who = f"patient {row['patient_id']} | {row['split']}"
        cv2.putText(grid, who[:chars], (x0 + 3, y0 + 23), font, scale, (200, 200, 200), 1, cv2.LINE_AA)
        if row["flags"]:
            cv2.putText(grid, str(row["flags"])[:chars], (x0 + 3, y0 + 35), font, scale, (0, 220, 255), 1, cv2.LINE_AA)
    return grid


def show(cfg: dict[str, Any]) -> int:
    """Write the preview grid (building the cache first if needed)."""
    import cv2

    from ggo.data.sources import prepare_from_config

    cache = prepare_from_config(cfg["data"], cfg["preprocess"], progress=True)
    out = Path(cfg["out"]).expanduser() if cfg.get("out") else project_root() / "data" / "preview.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    grid = preview_grid(cache, max_images=int(cfg.get("max_images", 100)), tile=int(cfg.get("tile", 256)))
    if not cv2.imwrite(str(out), grid):
        print(f"error: could not write {out}: check the folder is writable and the name ends in .png", file=sys.stderr)
        return 1
    print(f"wrote {out} ({min(len(cache.manifest), int(cfg.get('max_images', 100)))} images from {cache.path})")
    return 0


def export(cfg: dict[str, Any], out: str | None) -> int:
    """Write the configured dataset in the folder layout to ``out``."""
    from ggo.data.export import export_folder
    from ggo.data.records import FOLDER, GENERALBLOCKCHAIN
    from ggo.data.sources import SYNTHETIC_OPTS, resolve_data_root

    if not out:
        print("error: export needs --out DIR, the folder to create (e.g. --out ../ggo-folder)", file=sys.stderr)
        return 2
    data = cfg["data"]
    synthetic = {k: data[k] for k in SYNTHETIC_OPTS if data.get(k) is not None}
    root = resolve_data_root(data.get("name"), data.get("root"), data.get("cache_dir"), **synthetic)
    layout = FOLDER if data.get("name") == FOLDER else GENERALBLOCKCHAIN
    done = export_folder(root, out, layout=layout)
    print(
        f"exported {done['images']} images of {done['patients']} patients ({done['with_lungs']} with lung masks) "
        f"from {root} to {done['out']}: images/, masks/, lungs/, patients.csv"
    )
    for line in done["skipped"]:
        print(f"  skipped {line}")
    print(f"check it:  python -m ggo.data prepare data=folder data.root={done['out']}")
    print(f"train:     python -m ggo.train train=quick data=folder data.root={done['out']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_intermixed_args(argv)
    overrides = [*args.overrides, *([f"data.workers={args.workers}"] if args.workers is not None else [])]
    try:
        cfg = compose_config(args.action, overrides)
    except Exception as exc:  # noqa: BLE001 - Hydra's override and config errors: show them plainly
        print(f"error: bad overrides {args.overrides}: {exc}\nsee 'python -m ggo.data --help'", file=sys.stderr)
        return 2
    actions = {"fetch": fetch, "prepare": prepare, "show": show, "export": lambda c: export(c, args.export_out)}
    try:
        return actions[args.action](cfg)
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

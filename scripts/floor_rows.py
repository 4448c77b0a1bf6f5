"""Print the ablation table's floor rows: the annotated lungs themselves taken as the GGO mask.

    python scripts/floor_rows.py [--resolution 128]

GGO here is often diffuse, so "mark both lungs" is a strong trivial model. This scores it with
the evaluation protocol (README "Evaluation protocol"): per-image dice and pooled precision and
recall at the model's grid, on the 18 test films, out of fold (the 75 non-test films: no training,
so every validation film is out of fold), and over all 93. No training, no tracking: it reads the
data cache (built on first use, as `python -m ggo.data prepare` does).
"""

from __future__ import annotations

import argparse

import numpy as np

from ggo.config import defaults
from ggo.data import prepare_from_config
from ggo.metrics import evaluate


def floor_scores(resolution: int) -> dict[str, dict[str, float]]:
    """``{"test" | "oof" | "all": metrics}`` of lungs-as-GGO; films without lung annotation
    predict nothing (they count, as they would for a model that finds no lungs)."""
    data, pre = defaults("data"), {**defaults("preprocess"), "resolution": resolution}
    cache = prepare_from_config(data, pre, progress=False)
    parts = cache.split(0)
    oof = [cache.split(k)["val"] for k in range(cache.folds)]
    sets = {
        "test": (parts["test"].masks, parts["test"].lungs),
        "oof": (np.concatenate([v.masks for v in oof]), np.concatenate([v.lungs for v in oof])),
    }
    sets["all"] = tuple(np.concatenate([sets["test"][i], sets["oof"][i]]) for i in (0, 1))
    return {name: evaluate(masks, lungs.astype(np.float32)) | {"n": len(masks)} for name, (masks, lungs) in sets.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=128)
    args = parser.parse_args()
    scores = floor_scores(args.resolution)
    for name, m in scores.items():
        print(f"{name:>4} ({m['n']} films): dice {m['dice']:.3f}, precision {m['precision']:.3f}, recall {m['recall']:.3f}, pooled dice {m['dice_pooled']:.3f}")


if __name__ == "__main__":
    main()

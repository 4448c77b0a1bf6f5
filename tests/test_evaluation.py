"""The one predict -> postprocess -> score path, and the defaults it reads from the schema."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest

from ggo.config import DataConfig, EvalConfig, defaults
from ggo.evaluation.evaluate import EvalSettings, evaluate_splits, predict, score, score_original_size
from ggo.evaluation.metrics import evaluate


def _lesion_and_speck(n: int = 3, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Masks with one 8 x 8 lesion; probabilities that find it (0.8), add a 2 x 2 speck (0.9)
    and a faint halo (0.45) the default threshold ignores but 0.4 keeps."""
    masks = np.zeros((n, size, size, 1), np.float32)
    masks[:, 10:18, 10:18] = 1.0
    probs = np.full((n, size, size, 1), 0.1, np.float32)
    probs[:, 9:19, 9:19] = 0.45
    probs[:, 10:18, 10:18] = 0.8
    probs[:, 1:3, 1:3] = 0.9
    return masks, probs


def test_score_is_metrics_evaluate_after_the_threshold_and_small_component_removal() -> None:
    masks, probs = _lesion_and_speck()
    by_hand = probs.copy()
    by_hand[:, 1:3, 1:3] = 0.0  # the 4 px speck is under 5 px: removed; the 100 px lesion+halo stays
    settings = EvalSettings(threshold=0.4, min_component_px=5)
    assert score(masks, probs, settings) == evaluate(masks, by_hand, 0.4)
    # Without removal the speck costs precision; at 0.5 the halo does not count.
    plain = score(masks, probs, EvalSettings())
    assert plain == evaluate(masks, probs, 0.5)
    assert plain["precision"] == pytest.approx(64 / 68) and plain["recall"] == 1.0
    assert score(masks, probs, EvalSettings(min_component_px=5))["dice"] == 1.0


def test_settings_defaults_are_the_schemas_eval_section() -> None:
    schema = EvalConfig()
    assert EvalSettings() == EvalSettings.from_config({}) == EvalSettings.from_config(None)
    assert EvalSettings().as_config() == defaults("eval") == {
        "tta_flip": schema.tta_flip, "min_component_px": schema.min_component_px, "threshold": schema.threshold,
        "lung_gate": schema.lung_gate.value, "film_a": schema.film_a, "film_b": schema.film_b, "film_cut": schema.film_cut,
    }  # fmt: skip
    partial = EvalSettings.from_config({"threshold": 0.3})
    assert (partial.threshold, partial.min_component_px, partial.tta_flip) == (0.3, schema.min_component_px, schema.tta_flip)


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_the_hard_lung_gate_keeps_ggo_as_predicted_inside_the_lungs_and_drops_it_outside() -> None:
    from ggo.evaluation.inference import gated_probs

    # Pixel 0: GGO 0.6 in lungs the head is unsure of (0.7); pixel 1: GGO 0.9 where it sees no lung (0.3).
    logits = np.array([[[[_logit(0.6), _logit(0.7)], [_logit(0.9), _logit(0.3)]]]], np.float32)  # (1, 1, 2, 2)
    soft, hard = gated_probs(logits, ("lungs",), "soft"), gated_probs(logits, ("lungs",), "hard")
    assert soft[0, 0, :, 0] == pytest.approx([0.42, 0.27], abs=1e-5)  # both under 0.5: the unsure lungs cost the lesion
    assert hard[0, 0, :, 0] == pytest.approx([0.6, 0.0], abs=1e-5)
    # The lung channel is found among other heads; without a lung head the gate changes nothing.
    heart_first = np.concatenate([logits[..., :1], np.zeros_like(logits[..., :1]), logits[..., 1:]], axis=-1)
    assert gated_probs(heart_first, ("heart", "lungs"), "hard") == pytest.approx(hard)
    assert gated_probs(logits[..., :1], (), "hard") == pytest.approx(gated_probs(logits[..., :1], (), "soft"))
    with pytest.raises(ValueError, match="eval.lung_gate='lungs_only'"):
        gated_probs(logits, ("lungs",), "lungs_only")
    # The setting travels from a config (or a shipped model's preprocess.json) to the prediction.
    settings = EvalSettings.from_config({"lung_gate": "hard"})
    assert settings.lung_gate == "hard" and settings.as_config()["lung_gate"] == "hard"
    assert predict(lambda x, training=False: logits, np.zeros((1, 1, 2, 1), np.float32), settings) == pytest.approx(hard)


def test_every_library_default_reads_the_schema() -> None:
    from ggo.evaluation import metrics
    from ggo.evaluation import postprocess
    from ggo.evaluation import viz
    from ggo.ship.predict import build_parser, split_members

    from ggo.evaluation import inference

    threshold = EvalConfig().threshold
    assert metrics.THRESHOLD == viz.THRESHOLD == threshold
    gate = EvalConfig().lung_gate.value
    for fn in (inference.gated_probs, inference.predict_probs, inference.ensemble_probs):
        assert inspect.signature(fn).parameters["lung_gate"].default == gate, fn.__name__
    assert inspect.signature(postprocess.postprocess_probs).parameters["threshold"].default == threshold
    data = DataConfig()
    params = inspect.signature(split_members).parameters
    assert (params["seed"].default, params["test_fraction"].default, params["folds"].default) == (
        data.seed, data.test_fraction, data.folds,
    )  # fmt: skip
    args = build_parser().parse_args(["x.png"])
    assert (args.split_seed, args.test_fraction, args.folds) == (data.seed, data.test_fraction, data.folds)


def test_an_unknown_config_section_is_named_in_the_error() -> None:
    with pytest.raises(KeyError, match="'evaluation'.*sections: gen, disc"):
        defaults("evaluation")


def _logit_generator(logits: np.ndarray):
    """A stand-in generator: the same fixed logits whatever the images."""

    def generator(x, training=False):
        return logits[: len(x)]

    return generator


def test_evaluate_splits_predicts_every_split_and_scores_the_nonempty_ones() -> None:
    masks, probs = _lesion_and_speck(n=2)
    logits = np.log(probs / (1 - probs))
    images = np.ones((2, 32, 32, 1), np.float32)
    splits = {"val": _Split(images, masks), "test": _Split(images[:0], masks[:0])}
    metrics, maps = evaluate_splits(_logit_generator(logits), splits, EvalSettings())
    assert set(maps) == {"val", "test"} and maps["test"].shape == (0, 32, 32, 1)
    np.testing.assert_allclose(maps["val"], probs, atol=1e-6)
    assert metrics == {f"val/{k}": v for k, v in evaluate(masks, maps["val"]).items()}
    # An ensemble (a list) is the mean of its members' maps.
    twice = predict([_logit_generator(logits), _logit_generator(np.zeros_like(logits))], images, EvalSettings())
    np.testing.assert_allclose(twice, (probs + 0.5) / 2, atol=1e-6)


class _Split:
    def __init__(self, images: np.ndarray, masks: np.ndarray) -> None:
        self.images, self.masks = images, masks

    def __len__(self) -> int:
        return len(self.images)


def test_scores_at_original_size_equal_evaluate_when_every_image_has_the_grid_size() -> None:
    masks, probs = _lesion_and_speck()
    pairs = [(m[..., 0], p[..., 0]) for m, p in zip(masks, probs)]
    got = score_original_size(pairs, 0.4)
    want = evaluate(masks, probs, 0.4)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == pytest.approx(want[name], abs=1e-6), name
    assert score_original_size([]) == {}


def test_serving_config_ships_the_schemas_eval_defaults_for_missing_keys() -> None:
    from ggo.serving.model import serving_config

    config = {"preprocess": {"resolution": 64, "fit": "pad", "clahe": False, "clahe_clip": 2.0}, "gen": {"name": "unet"}}
    shipped = serving_config(config)
    assert {k: shipped[k] for k in defaults("eval")} == defaults("eval")
    assert serving_config({**config, "eval": {"threshold": 0.3}})["threshold"] == 0.3


def test_nothing_below_the_entry_imports_the_orchestrator() -> None:
    code = (
        "import sys, ggo.sweeps.callback, ggo.serving.model, ggo.bench.inference, ggo.bench.throughput, ggo.ship.predict, ggo.evaluation.evaluate\n"
        "import ggo.training.callbacks\n"
        "assert 'ggo.training.experiment' not in sys.modules, 'ggo.training.experiment was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]

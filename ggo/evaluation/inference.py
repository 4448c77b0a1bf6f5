"""Prediction from preprocessed arrays: sigmoid, flip test-time augmentation, fold ensembles.

Training's final evaluation and the shipped model both go through :func:`ensemble_probs`, so
the numbers a run reports are the numbers its model reproduces.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ggo.config import defaults
from ggo.heads import model_heads


#: ``eval.lung_gate`` choices, the schema's default, and the lung probability above which ``hard`` keeps GGO.
LUNG_GATES = ("soft", "hard")
LUNG_GATE = defaults("eval")["lung_gate"]
LUNG_LEVEL = 0.5


def sigmoid(x: Any) -> np.ndarray:
    """Logistic function without overflow warnings for large negative logits."""
    x = np.asarray(x, np.float32)
    return np.exp(-np.logaddexp(0.0, -x)).astype(np.float32)


def gated_probs(logits: Any, heads: tuple[str, ...] | None = None, lung_gate: str = LUNG_GATE) -> np.ndarray:
    """GGO probabilities (N, R, R, 1) from generator logits (N, R, R, 1 + K), channel 0 GGO and
    then the auxiliary ``heads`` (:mod:`ggo.heads`; None: 1 channel is GGO alone, 2 are GGO and
    lungs, the layout of every model saved before ``gen.aux_heads``).

    With a lung head, ``lung_gate`` (``eval.lung_gate``) says how the lungs gate GGO: ``soft``,
    a prior, P(GGO) x P(lung), so GGO predicted where the network sees no lung (shoulders, neck,
    abdomen) fades out, but a lung head that is right yet unsure (P(lung) ~ 0.7) also pulls true
    GGO under the threshold; ``hard``, P(GGO) where P(lung) > 0.5 and 0 elsewhere, so inside the
    predicted lungs the GGO probability is the GGO head's own. The other heads do not touch GGO.
    """
    lung_gate = str(getattr(lung_gate, "value", lung_gate))
    if lung_gate not in LUNG_GATES:
        raise ValueError(f"eval.lung_gate={lung_gate!r}: choose one of {', '.join(LUNG_GATES)}")
    p = sigmoid(logits)
    if heads is None:
        if p.shape[-1] > 2:
            raise ValueError(
                f"generator logits have {p.shape[-1]} channels: say which heads they are (heads=...); "
                "only 1 (GGO) or 2 (GGO, lungs) are read without"
            )
        heads = ("lungs",) if p.shape[-1] == 2 else ()
    if len(heads) + 1 != p.shape[-1]:
        raise ValueError(f"generator logits have {p.shape[-1]} channels, not 1 + {len(heads)} for the heads {heads}")
    if "lungs" in heads:
        lung = p[..., 1 + heads.index("lungs") :][..., :1]
        if lung_gate == "hard":
            return np.where(lung > LUNG_LEVEL, p[..., :1], np.float32(0.0))
        return p[..., :1] * lung
    return p[..., :1]


def lung_probs(generator: Any, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Lung probabilities (N, R, R, 1) float32 from a generator with a lung head (``gen.lung_head=true``
    or ``lungs`` among ``gen.aux_heads``).

    The lungs' channel is read from the generator's heads (:func:`ggo.heads.model_heads`; a model
    saved before auxiliary heads has GGO then lungs). A generator without a lung head raises a
    ValueError that says so.
    """
    heads = model_heads(generator)
    out = []
    for i in range(0, len(images), batch_size):
        logits = np.asarray(generator(images[i : i + batch_size], training=False))
        found = heads if heads is not None else {2: ("lungs",)}.get(logits.shape[-1], ())
        if "lungs" not in found:
            raise ValueError(
                f"generator {getattr(generator, 'name', '?')!r} has no lung head (output channels: {logits.shape[-1]}, "
                f"heads: {', '.join(found) or 'none'}): its run was not trained with gen.lung_head=true"
            )
        lung = 1 + found.index("lungs")
        out.append(sigmoid(logits[..., lung : lung + 1]))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((*images.shape[:-1], 1), np.float32)


def predict_probs(
    generator: Any, images: np.ndarray, batch_size: int = 8, *, tta_flip: bool = False, lung_gate: str = LUNG_GATE
) -> np.ndarray:
    """GGO probability maps (N, R, R, 1) float32 for preprocessed ``images``.

    ``tta_flip`` averages with the prediction of the horizontally flipped image (flipped back).
    A generator with a lung head is gated by its lungs (:func:`gated_probs`, ``lung_gate``); its heads are read
    from its output layer (:func:`ggo.heads.model_heads`).
    """
    if len(images) == 0:
        return np.zeros((*images.shape[:-1], 1), dtype=np.float32)
    heads = model_heads(generator)
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size]
        p = gated_probs(generator(x, training=False), heads, lung_gate)
        if tta_flip:
            p = 0.5 * (p + gated_probs(generator(x[:, :, ::-1], training=False), heads, lung_gate)[:, :, ::-1])
        out.append(p)
    return np.concatenate(out).astype(np.float32)


def ensemble_probs(
    generators: Sequence[Any], images: np.ndarray, batch_size: int = 8, *, tta_flip: bool = False, lung_gate: str = LUNG_GATE
) -> np.ndarray:
    """The mean of :func:`predict_probs` over ``generators`` (a fold ensemble)."""
    maps = [predict_probs(g, images, batch_size, tta_flip=tta_flip, lung_gate=lung_gate) for g in generators]
    return np.mean(maps, axis=0).astype(np.float32)

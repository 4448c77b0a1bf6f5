"""Auxiliary generator outputs (``gen.aux_heads``): which dataset classes each head learns, when a
film's missing annotation means "unknown" and when it means "none", and how a saved generator
says which heads it has. Plain Python: no Keras, no numpy.

A generator with heads ``(h1, ..., hK)`` emits 1 + K logit channels, GGO first, then one per head
in that order; it trains on 1 + 2K target channels, the GGO mask then ``(target, weight)`` per
head (weight 0 where the head's annotation is unknown on that film). Only ``lungs`` changes what a
model predicts: GGO is gated by the lung probability (:func:`ggo.evaluation.inference.gated_probs`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

LUNGS = "lungs"

#: head name -> the structure.csv ``Template Name`` classes whose union it learns.
HEAD_CLASSES: dict[str, tuple[str, ...]] = {
    LUNGS: ("Left Lung", "Right Lung"),
    "heart": ("Cardiomediastinum",),
    "airways": ("Airways",),
    "consolidation": ("Consolidation",),
    # The dataset spells it "Nosogastric Tube"; the correct spelling is accepted too.
    "devices": (
        "Monitoring Probes", "Tubings", "Endotracheal Tube", "Central Venous Line", "Nosogastric Tube",
        "Nasogastric Tube",
    ),
}  # fmt: skip
AUX_HEADS = tuple(HEAD_CLASSES)

#: What a film without the head's annotation teaches it. ``unknown``: nothing (weight 0): the
#: class is on every chest film, so a missing annotation was skipped, not absent. ``none``: the
#: class is absent (empty target, weight 1), provided the film was annotated at all
#: (:func:`anatomy_annotated`); on a film without its anatomy annotated it is unknown too.
MISSING: dict[str, str] = {
    LUNGS: "unknown",
    "heart": "unknown",
    "airways": "unknown",
    "consolidation": "none",
    "devices": "none",
}

#: The heads whose masks the data cache stores besides the lungs (which have their own arrays).
CLASS_HEADS = tuple(h for h in AUX_HEADS if h != LUNGS)

#: The generator's output layer is named ``logits`` for no head or the lung head alone (the
#: layout of every model saved before ``gen.aux_heads``), else ``logits_`` + the heads joined by ``_``.
OUTPUT_LAYER = "logits"


def resolve_heads(lung_head: bool = False, aux_heads: Iterable[str] = ()) -> tuple[str, ...]:
    """The generator's auxiliary heads in channel order: ``aux_heads``, with ``lungs`` first when
    ``lung_head`` is set and ``aux_heads`` lacks it (``gen.lung_head=true`` is ``aux_heads=[lungs]``).
    Raises a ValueError naming an unknown or repeated head."""
    heads = tuple(str(getattr(h, "value", h)) for h in aux_heads)
    unknown = [h for h in heads if h not in HEAD_CLASSES]
    if unknown:
        raise ValueError(f"gen.aux_heads: unknown head(s) {unknown}; choose from {', '.join(AUX_HEADS)}")
    repeated = sorted({h for h in heads if heads.count(h) > 1})
    if repeated:
        raise ValueError(f"gen.aux_heads: {repeated} listed more than once; name each head once")
    if lung_head and LUNGS not in heads:
        heads = (LUNGS, *heads)
    return heads


def output_layer_name(heads: tuple[str, ...]) -> str:
    """The name of the output layer of a generator with ``heads`` (see :data:`OUTPUT_LAYER`)."""
    if heads in ((), (LUNGS,)):
        return OUTPUT_LAYER
    return OUTPUT_LAYER + "_" + "_".join(heads)


def heads_from_layer(name: str, channels: int) -> tuple[str, ...] | None:
    """The heads of a generator whose output layer is ``name`` with ``channels`` channels; None
    when the name is not one :func:`output_layer_name` gives (a model not built by ggo)."""
    if name == OUTPUT_LAYER:
        return {1: (), 2: (LUNGS,)}.get(channels)
    prefix = OUTPUT_LAYER + "_"
    if not name.startswith(prefix):
        return None
    heads = tuple(name[len(prefix) :].split("_"))
    if len(heads) + 1 != channels or any(h not in HEAD_CLASSES for h in heads):
        return None
    return heads


def model_heads(model: Any) -> tuple[str, ...] | None:
    """The heads of a Keras generator, read from its output layer; None when it does not say."""
    try:
        layer = model.layers[-1]
        channels = int(model.outputs[0].shape[-1])
    except (AttributeError, IndexError, TypeError):
        return None
    return heads_from_layer(layer.name, channels)


def anatomy_annotated(annotated: Collection[str], lung_sides: Collection[str]) -> bool:
    """Whether a film looks fully annotated: its heart and at least one lung are. In the
    GeneralBlockchain set every one of the 93 GGO films is (Cardiomediastinum on all 93, a lung
    on all 93); a folder dataset has no class masks, so none of its films is."""
    return "heart" in annotated and len(lung_sides) > 0


def head_known(head: str, annotated: Collection[str], lung_sides: Collection[str], unmasked: Collection[str] = ()) -> bool:
    """Whether a film's target for ``head`` is known (weight 1): ``annotated`` are the
    :data:`CLASS_HEADS` annotated on it, ``lung_sides`` its annotated lung sides, ``unmasked``
    the heads with a class marked on it without a mask (unknown: drawn partly or not at all).

    ``lungs``: both sides annotated (a missing side would teach that lung is background).
    ``heart``, ``airways``: annotated. ``consolidation``, ``devices``: annotated, or absent from a
    film whose anatomy is annotated (:func:`anatomy_annotated`): then the class is truly absent.
    """
    if head == LUNGS:
        return all(side in lung_sides for side in ("left", "right"))
    if head in unmasked:
        return False
    if head in annotated:
        return True
    return MISSING[head] == "none" and anatomy_annotated(annotated, lung_sides)


__all__ = [
    "AUX_HEADS",
    "CLASS_HEADS",
    "HEAD_CLASSES",
    "LUNGS",
    "MISSING",
    "anatomy_annotated",
    "head_known",
    "heads_from_layer",
    "model_heads",
    "output_layer_name",
    "resolve_heads",
]

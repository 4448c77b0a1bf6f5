"""``python -m ggo COMMAND [args]`` (or ``ggo COMMAND``): every command of ggo behind one door.

Each command is a module with a ``main(argv)``; only the chosen one is imported, so ``--help``
and a light command start in a fraction of a second and ``bench --backend jax`` chooses its Keras
backend before anything loads Keras. ``train`` runs ``ggo.train`` exactly as ``python -m ggo.train``
does (Hydra reads the command line itself). Every ``python -m ggo.X`` command keeps working.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    module: str  # the module whose main(argv) runs it
    summary: str  # one line for --help
    optional: bool = False  # a module a version of ggo may not have yet


#: The commands in the order a user meets them: train, inspect, ship, then the row tools.
COMMANDS: dict[str, Command] = {
    "train": Command("ggo.train", "train one configuration or sweep many (Hydra: python -m ggo train -m gen=unet,attention_unet)"),
    "data": Command("ggo.data.__main__", "get the dataset, build the preprocessed cache, preview or export it"),
    "runs": Command("ggo.tracking.clean", "housekeeping of the MLflow store: end runs a hard kill left RUNNING"),
    "compare": Command("ggo.evaluation.compare", "the paired dice difference of two runs, with a 95% interval over patients"),
    "join": Command("ggo.sweeps.join", "one CV parent run from CV rows of one recipe trained with other seeds"),
    "rescore": Command("ggo.sweeps.rescore", "re-score a CV row's fold models with other eval settings, or joined with other seeds"),
    "floor": Command("ggo.sweeps.floor", "the lungs-as-GGO floor rows: annotated lungs, or those a lung head predicts"),
    "ggo-free": Command("ggo.sweeps.ggo_free_area", "GGO-free area of CV parents logged before it was scored, from their models"),
    "table": Command("ggo.sweeps.ablation", "the ablation table: one markdown row per CV parent of MLflow experiments"),
    "promote": Command("ggo.ship.promote", "register the best finished run as ggo-segmenter@champion"),
    "predict": Command("ggo.ship.predict.cli", "masks, overlays and a CSV row per X-ray from the registered model"),
    "figure": Command("ggo.ship.figure", "a grid of films with TP / FP / FN in colour and each film's dice, from a model"),
    "report": Command("ggo.report", "the sweep report: one HTML page per sweep or CV parent (ranking, intervals, pictures)", optional=True),
    "bench": Command("ggo.bench.__main__", "how fast ggo trains, feeds, predicts and starts on this machine"),
    "gpu-check": Command("ggo.bench.gpu", "the JAX GPU check: images/s and peak memory per precision (JAX, Keras, numpy only)"),
}

PROG = "python -m ggo"


def installed(command: Command) -> bool:
    """Whether an optional command's module is in this ggo, found without importing it (the others
    always are; looking theirs up would import their packages)."""
    return not command.optional or importlib.util.find_spec(command.module) is not None


def usage() -> str:
    """The --help text: one line per command."""
    width = max(map(len, COMMANDS))
    lines = [
        f"usage: {PROG} COMMAND [args]   (or: ggo COMMAND [args])",
        "",
        "Adversarial U-Nets for ground-glass opacity segmentation on chest X-rays: train, evaluate and ship.",
        "",
        "commands:",
    ]
    for name, command in COMMANDS.items():
        note = "" if installed(command) else " (not installed in this version)"
        lines.append(f"  {name:<{width}}  {command.summary}{note}")
    lines += [
        "",
        f"'{PROG} COMMAND --help' explains one command. Each also runs as before, e.g. python -m ggo.train,",
        "python -m ggo.promote, python -m ggo.predict, python -m ggo.data, python -m ggo.bench.",
        "",
        "examples:",
        f"  {PROG} train -m gen=unet,attention_unet",
        f"  {PROG} promote",
        f"  {PROG} predict scans/ --out results/",
        f"  {PROG} rescore <CV parent> --set eval.lung_gate=hard",
    ]
    return "\n".join(lines)


def run_train(argv: Sequence[str]) -> int:
    """``ggo.train`` run as ``python -m ggo.train`` runs it: as ``__main__`` with ``sys.argv`` its own
    (Hydra parses the command line and finds ``conf/`` from the module's file)."""
    import runpy

    spec = importlib.util.find_spec("ggo.train")
    saved = sys.argv
    sys.argv = [spec.origin if spec and spec.origin else "ggo/train.py", *argv]
    try:
        runpy.run_module("ggo.train", run_name="__main__", alter_sys=True)
    finally:
        sys.argv = saved
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default: the command line) to its command; 2 for an unknown command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    command = COMMANDS.get(name)
    if command is None:
        print(f"{PROG}: unknown command {name!r}; the commands are: {', '.join(COMMANDS)} (see {PROG} --help)", file=sys.stderr)
        return 2
    if name == "train":
        return run_train(rest)
    try:
        module = importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        if exc.name != command.module:  # a dependency of the command is missing: say which
            raise
        print(f"{PROG} {name}: not installed in this version (no module {command.module})", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())

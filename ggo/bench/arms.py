"""Process-wide settings timed arm by arm, each arm in a process of its own.

XLA (``train.jit_compile``), TensorFlow's thread pools (``train.threads``) and the precision policy
(``train.precision``) hold for a whole process. The paired rows of the training grid time ggo and
the reference step in one process, so a process-wide setting reaches the yardstick too: with XLA
on, the reference step slowed by 7-14% (an AVX2 EPYC, 128 px), and the XLA row's ratio overstated
XLA's gain (1.25-1.32x where the two arms, each alone, ran 10.1 and 11.4 img/s: 1.13x).

Here each arm of such a setting runs alone in a fresh process (:mod:`ggo.training.steptime`, the
run's own step built from the composed config), in rounds that alternate the arms' order (A B,
B A, ...) so that a drift in the machine's load falls on both. Every arm reports its own images/s
(median over rounds), by wall clock and per CPU second, and each round gives the ratio of every
arm to the first; the table shows the median ratio with its interquartile range. On a machine
shared with other work the wall clock swings with their load while the CPU seconds a step costs
stay nearly put: the CPU ratio is the steadier comparison there (on a GPU, the wall clock's).
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any, Callable

PROCESS_WIDE = ("train.jit_compile", "train.threads", "train.precision")
DEFAULT_ARMS = ("train.jit_compile=false,true",)


@dataclasses.dataclass(frozen=True)
class ArmsCase:
    """One process-wide setting and the values it takes, on one model."""

    key: str
    values: tuple[str, ...]
    resolution: int = 128
    gen: str = "unet"
    precision: str = "float32"

    @classmethod
    def parse(cls, text: str, **model: Any) -> ArmsCase:
        """``KEY=V1,V2[,...]`` (at least two values) of a process-wide setting."""
        from ggo.bench.errors import BenchConfigError

        key, _, values = text.partition("=")
        items = tuple(v.strip() for v in values.split(",") if v.strip())
        if key.strip() not in PROCESS_WIDE or len(items) < 2:
            raise BenchConfigError(
                f"--arms {text!r}: expected KEY=V1,V2 with two values or more of a process-wide setting "
                f"({', '.join(PROCESS_WIDE)}), e.g. --arms train.jit_compile=false,true"
            )
        return cls(key.strip(), items, **model)


def arm_config(case: ArmsCase, value: str, *, batch_size: int, base_filters: int | None = None,
               disc_base_filters: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The validated run config of one arm: the row's model with ``key=value``."""
    from ggo.bench.throughput import TrainCase, case_config

    row = TrainCase(case.resolution, case.gen, case.precision, False, overrides=(f"{case.key}={value}",))
    config, _ = case_config(row, batch_size=batch_size, base_filters=base_filters, disc_base_filters=disc_base_filters)
    return config


def measure_arms(
    case: ArmsCase, configs: dict[str, dict[str, Any]], *, rounds: int, timing: dict[str, Any],
    log: Callable[[str], None] = print, timed: Callable[..., dict[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Each arm's images/s from ``rounds`` rounds of one fresh process per arm (order alternating
    by round), and every arm's ratio to the first, per round and summarised."""
    from ggo.bench.paired import spread
    from ggo.training.xla_choice import timed_in_own_process

    timed = timed or timed_in_own_process
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in case.values}
    for r in range(rounds):
        for value in case.values if r % 2 == 0 else tuple(reversed(case.values)):
            got = timed(configs[value], **timing)
            runs[value].append(got)
            log(f"[bench] arms {case.key}={value} round {r + 1}/{rounds}: {got['images_per_s']} img/s")
    first = case.values[0]
    arms = []
    for value in case.values:
        arm = {"value": value, "effective": {k: runs[value][-1].get(k) for k in ("jit_compile", "precision", "threads")}}
        for key, prefix in (("images_per_s", ""), ("images_per_cpu_s", "cpu_")):
            rates = [g[key] for g in runs[value]]
            stats = spread([a / g[key] for a, g in zip(rates, runs[first])])
            arm.update({
                key: round(statistics.median(rates), 2), f"rounds_{key}": rates,
                f"{prefix}ratio_vs_first": round(stats["median"], 3),
                f"{prefix}ratio_iqr": [round(stats["p25"], 3), round(stats["p75"], 3)],
            })  # fmt: skip
        arms.append(arm)
    return {"setting": case.key, "resolution": case.resolution, "gen": case.gen, "precision": case.precision,
            "rounds": rounds, "timing": timing, "arms": arms}  # fmt: skip


def arms_lines(results: list[dict[str, Any]]) -> list[str]:
    """One line per setting: every arm's own images/s and its ratio to the first arm."""
    lines = []
    for res in results or []:
        if res.get("error"):
            lines.append(f"process arms {res['setting']}: error {res['error']}")
            continue
        parts = [f"{a['value']} {a['images_per_s']:.2f} img/s, {a['images_per_cpu_s']:.2f} per CPU s" + ("" if i == 0 else
                 f" ({a['ratio_vs_first']:.2f}x, IQR {a['ratio_iqr'][0]:.2f}-{a['ratio_iqr'][1]:.2f}; CPU "
                 f"{a['cpu_ratio_vs_first']:.2f}x, IQR {a['cpu_ratio_iqr'][0]:.2f}-{a['cpu_ratio_iqr'][1]:.2f})")
                 for i, a in enumerate(res["arms"])]  # fmt: skip
        lines.append(f"process arms {res['setting']} ({res['resolution']} px {res['gen']} {res['precision']}, each arm alone "
                     f"in its own process, {res['rounds']} rounds): " + ", ".join(parts))  # fmt: skip
    return lines or ["process arms: -"]

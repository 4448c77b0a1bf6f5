"""``train.threads``: each job's TensorFlow thread pools, set before TensorFlow starts them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import tiny_overrides

from ggo.config import ConfigError, compose, to_dict, validate


def test_threads_default_to_tensorflows_own_choice() -> None:
    assert to_dict(compose([]))["train"]["threads"] == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["train.threads=-1"], "train.threads=-1: must be >= 0"),
     (["train.threads=1", "train.backend=jax"], "train.threads=1: sets TensorFlow's thread pools")],
)  # fmt: skip
def test_a_thread_count_that_cannot_apply_fails_before_any_data_is_read(overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(to_dict(compose(overrides)))


# The job's own setup (ggo.training.experiment.prepare), then what TensorFlow runs with: its configured
# pools, and the threads its intra-op pool really started (named tf_Compute, one per core by
# default: 2 on this project's machine) once it has run ops.
_JOB = """
import json, os, sys, warnings
from ggo.config import compose, typed
from ggo.training.experiment import Run, prepare
from ggo.tracking import Tracker
from ggo.runtime.threads import ThreadLimitError, tensorflow_threads

def job(threads):
    cfg = typed(compose(sys.argv[1:] + [f"train.threads={threads}"]))
    return prepare(Run.of(cfg, Tracker()))

job(1)
import tensorflow as tf
x = tf.random.normal((512, 512))
tf.linalg.matmul(x, x).numpy()
compute = [t for t in os.listdir("/proc/self/task") if open(f"/proc/self/task/{t}/comm").read().strip() == "tf_Compute"]
job(1)  # a later job of the same process asking the same: fine
try:
    job(2)
    refused = ""
except ThreadLimitError as exc:
    refused = str(exc)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    job(0)
print(json.dumps({"threads": tensorflow_threads(), "compute_threads": len(compute), "refused": refused,
                  "warned": [str(w.message) for w in caught if "train.threads=0" in str(w.message)]}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in Linux's /proc")
def test_threads_one_limits_tensorflow_for_the_job_and_later_jobs_of_its_process(tmp_path: Path) -> None:
    env = {**os.environ, "GGO_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", _JOB, *tiny_overrides(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["threads"] == [1, 1]
    assert got["compute_threads"] == 1, got  # the intra-op pool TensorFlow started has one thread
    assert "train.threads=2" in got["refused"] and "1 intra-op / 1 inter-op" in got["refused"]
    assert "one train.threads value per sweep" in got["refused"]
    assert got["warned"] and "limited it to 1 intra-op" in got["warned"][0]

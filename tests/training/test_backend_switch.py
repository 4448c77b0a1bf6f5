"""The backend switch: ``ggo.training.for_backend`` hands out one backend's trainer after one
check, and ``set_random_seed`` seeds without importing TensorFlow off TensorFlow.

This process runs Keras on TensorFlow; the JAX side runs in a subprocess under the TensorFlow
import watch of ``test_jax_backend.py``.
"""

from __future__ import annotations

import random

import keras
import numpy as np
import pytest

import ggo.training
from ggo.runtime.backend import require_backend
from ggo.training import Trainer, for_backend, set_random_seed
from test_jax_backend import jax_env, result, run_jax_script  # noqa: F401  (jax_env is a fixture)


def test_for_backend_hands_out_the_tensorflow_gan_and_tf_data_pipeline():
    from ggo.training import gan, pipeline

    trainer = for_backend("tensorflow")
    assert isinstance(trainer, Trainer) and trainer.backend == "tensorflow"
    assert trainer.GAN is gan.GAN and trainer.make_gan == gan.GAN.from_names
    assert trainer.make_dataset is pipeline.make_dataset and trainer.augment_batch is pipeline.augment_batch


def test_for_backend_refuses_a_backend_keras_does_not_run_here_naming_the_fix():
    with pytest.raises(RuntimeError) as caught:
        for_backend("jax")
    message = str(caught.value)
    assert "train.backend=jax" in message and "'tensorflow'" in message
    assert "KERAS_BACKEND=jax" in message and "joblib" in message
    with pytest.raises(RuntimeError, match=r"^run_bench\(backend='jax'\), but"):
        require_backend("jax", by="run_bench(backend='jax')")
    with pytest.raises(ValueError, match="torch.*tensorflow, jax"):
        for_backend("torch")


def test_jax_gan_refuses_a_tensorflow_process_with_the_same_check():
    from ggo.models import build_generator
    from ggo.training.jax_gan import JaxGAN

    with pytest.raises(RuntimeError, match="^JaxGAN needs the JAX backend, but .*KERAS_BACKEND=jax"):
        JaxGAN(build_generator("unet", 32, depth=3, base_filters=4))


def test_no_name_in_ggo_training_follows_the_backend():
    # the backend's pieces come only from for_backend: nothing that silently changes meaning
    for gone in ("GAN", "make_dataset", "make_gan", "augment_batch"):
        with pytest.raises(AttributeError):
            getattr(ggo.training, gone)


def test_set_random_seed_on_tensorflow_seeds_python_numpy_keras_and_tensorflow():
    import tensorflow as tf

    def draws():
        return random.random(), np.random.rand(), keras.random.normal((3,)).numpy().tolist(), tf.random.uniform((2,)).numpy().tolist()

    from keras.src.utils.rng_utils import get_random_seed  # Keras' record of the global seed

    set_random_seed(5)
    first = draws()
    assert get_random_seed() == 5
    set_random_seed(5)
    assert draws() == first
    set_random_seed(6)
    assert draws() != first


@pytest.mark.slow
def test_set_random_seed_on_jax_repeats_draws_and_weights_without_importing_tensorflow(jax_env, tmp_path):
    proc = run_jax_script(
        """
        import random

        def draws():
            gan = make_gan("unet", "patchgan", 32, GEN, DISC)
            weights = float(sum(np.abs(w).sum() for w in gan.get_weights()))
            return [random.random(), float(np.random.rand()), np.asarray(keras.random.normal((3,))).tolist(), weights]

        set_random_seed(3)
        first = draws()
        from keras.src.utils.rng_utils import get_random_seed
        seed = get_random_seed()
        set_random_seed(3)
        again = draws()
        set_random_seed(4)
        other = draws()
        print("RESULT " + json.dumps({"first": first, "again": again, "other": other, "seed": seed,
                                      "tensorflow_loaded": "tensorflow" in sys.modules}))
        """,
        jax_env, tmp_path,
    )
    r = result(proc)
    assert r["seed"] == 3 and not r["tensorflow_loaded"]
    assert r["again"] == r["first"]
    assert all(a != b for a, b in zip(r["first"], r["other"]))

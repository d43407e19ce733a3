"""Lazy, side-effect-free imports of TF-MOT and tf_keras.

Importing `tensorflow_model_optimization` sets `TF_USE_LEGACY_KERAS=1`; if
`tf.keras` has not been resolved yet, it then resolves to tf_keras for the
whole process. We resolve `tf.keras` first (to Keras 3, as the user had it),
import TF-MOT, and restore the environment variable, so the user's process
is left as we found it.
"""

import os

_INSTALL_HINT = "Compression needs TF-MOT: pip install 'keras_kd[compress]'"


def tf_keras():
    """Returns the `tf_keras` module (Keras 2), with an install hint."""
    try:
        import tf_keras as module
    except ImportError as e:
        raise ImportError(_INSTALL_HINT + f" (missing: {e.name})") from e
    return module


def tfmot():
    """Returns `tensorflow_model_optimization`, imported side-effect free."""
    import tensorflow as tf

    previous = os.environ.get("TF_USE_LEGACY_KERAS")
    # Resolve tf.keras now, while the variable is as the user set it.
    tf.keras.Model  # noqa: B018
    try:
        import tensorflow_model_optimization as module
    except ImportError as e:
        raise ImportError(_INSTALL_HINT + f" (missing: {e.name})") from e
    finally:
        if previous is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = previous
    return module

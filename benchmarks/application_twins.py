"""Which keras.applications families get a tf_keras twin (TF-MOT pruning
and QAT) and which get post-training quantization only.

For each family (random initialisation, no downloads; BatchNormalization
statistics randomised so that logits are far from zero): build it at a
small input size, call `keras_kd.compression.to_tf_keras` (which checks
the twin's logits against Keras's), and report the largest difference
relative to max(1, |logit|), or the error.

Usage:
    python benchmarks/application_twins.py [--families ResNet50 ...]
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_kd.compression import to_tf_keras  # noqa: E402
from keras_kd.utils import compat  # noqa: E402

FAMILIES = {
    # family: (constructor, input size, extra arguments)
    "ConvNeXtTiny": ("ConvNeXtTiny", 32, {"include_preprocessing": False}),
    "DenseNet121": ("DenseNet121", 32, {}),
    "EfficientNetB0": ("EfficientNetB0", 32, {}),
    "EfficientNetV2B0": ("EfficientNetV2B0", 32,
                         {"include_preprocessing": False}),
    "InceptionV3": ("InceptionV3", 75, {}),
    "MobileNet": ("MobileNet", 32, {"alpha": 0.25}),
    "MobileNetV2": ("MobileNetV2", 32, {"alpha": 0.35}),
    "MobileNetV3Small": ("MobileNetV3Small", 32,
                         {"include_preprocessing": False}),
    "MobileNetV3Large": ("MobileNetV3Large", 32,
                         {"include_preprocessing": False}),
    "NASNetMobile": ("NASNetMobile", 32, {}),
    "ResNet50": ("ResNet50", 32, {}),
    "ResNet50V2": ("ResNet50V2", 32, {}),
    "VGG16": ("VGG16", 32, {}),
    "Xception": ("Xception", 71, {}),
}


def randomize_batch_norm(model, rng):
    draws = {"gamma": lambda n: rng.uniform(0.5, 1.5, n),
             "beta": lambda n: rng.normal(0, 0.2, n),
             "moving_mean": lambda n: rng.normal(0, 0.2, n),
             "moving_variance": lambda n: rng.uniform(0.5, 1.5, n)}
    for layer in compat.all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            for weight in layer.weights:
                kind = weight.path.split("/")[-1]
                weight.assign(draws[kind](weight.shape))


def try_family(name):
    constructor, size, kwargs = FAMILIES[name]
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = getattr(keras.applications, constructor)(
        input_shape=(size, size, 3), weights=None, classes=5,
        classifier_activation=None, **kwargs)
    randomize_batch_norm(model, rng)
    x = rng.normal(size=(2, size, size, 3)).astype("float32")
    expected = np.asarray(model(x, training=False))
    start = time.time()
    try:
        twin = to_tf_keras(model, check_numerics=False)
    except Exception as e:
        return f"no twin: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
    got = twin(x, training=False).numpy()
    relative = np.abs(got - expected).max() / max(1.0,
                                                  np.abs(expected).max())
    verdict = "twin" if relative <= 1e-4 else "twin DIFFERS"
    return (f"{verdict}: max |diff| / max(1, |logit|) = {relative:.1e} "
            f"(|logit| up to {np.abs(expected).max():.2f}; "
            f"{time.time() - start:.1f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES),
                        choices=list(FAMILIES))
    args = parser.parse_args()
    for name in args.families:
        print(f"{name:18s} {try_family(name)}", flush=True)


if __name__ == "__main__":
    main()

"""Epoch timers, the CNN pair and the seed summaries of the benchmarks
(`benchmarks/step_time.py`, `benchmarks/precompute.py`, the `*_seeds.py`
scripts).

Example:

```python
from keras_kd_examples.timing import make_cnn, timed_fit

seconds = timed_fit(make_cnn(16, "student"), x, y, epochs=3, batch_size=128)
```
"""

import statistics
import time

import keras

# Attention pairs between two `make_cnn` models (14x14 and 7x7 outputs).
PAIRS = [("block2_out", "block2_out"), ("block3_out", "block3_out")]


def conv_block(x, filters, name, strides=1):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same",
                            use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_out")(x)


def make_cnn(width, name, dropout=0.0):
    """Three conv blocks of widths (w, 2w, 2w) at 28, 14 and 7 pixels."""
    inputs = keras.Input((28, 28, 1))
    x = conv_block(inputs, width, "block1")
    x = conv_block(x, 2 * width, "block2", strides=2)  # 14x14
    x = conv_block(x, 2 * width, "block3", strides=2)  # 7x7
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def timed_fit(model, x, y, epochs, batch_size, sample_weight=None):
    timer = EpochTimer()
    model.fit(x, y, sample_weight=sample_weight, epochs=epochs,
              batch_size=batch_size, verbose=0, callbacks=[timer])
    return statistics.median(timer.times[1:])


def timed_fit_data(model, dataset, epochs, warm_up=True):
    """Median epoch time of `model.fit` on a batched `tf.data` pipeline.

    With `warm_up`, the first epoch (tracing) is left out.
    """
    timer = EpochTimer()
    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer])
    return statistics.median(timer.times[1:] if warm_up else timer.times)


def timed_inference(model, x, epochs, batch_size):
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.predict(x, batch_size=batch_size, verbose=0)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def summary(values):
    """`"92.74 ± 0.13%"`: mean and sample std of accuracies over seeds."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * std:.2f}%"

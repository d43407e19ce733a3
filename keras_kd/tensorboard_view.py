"""A TensorBoard view of distillation: every term's loss, and teacher and
student attention maps side by side as images."""

import keras
import numpy as np
from keras import ops

from keras_kd.capture import ATTENTION_PROBABILITIES
from keras_kd.capture import LayerCapture
from keras_kd.capture import Tap
from keras_kd.losses.attention_transfer import attention_map
from keras_kd.terms.attention_transfer import AttentionTransferTerm


class DistillationTensorBoard(keras.callbacks.Callback):
    """Writes what a distillation does to TensorBoard, each epoch.

    - Scalars `terms/<name>_loss` for the student's loss and every term of
      the `Distiller` (what `fit` logs), training and validation.
    - Every `every` epochs, for each attention term (`AttentionTransferTerm`:
      the p = 2 spatial maps; `AttentionMapTerm`: the head-averaged
      attention probabilities), one image per pair and example of `images`:
      the teacher's map on the left, the student's on the right (resized to
      the teacher's, each scaled to [0, 1]), under
      `attention/<term>/<teacher layer> | <student layer>`.

    Writing uses `tf.summary` (TensorFlow must be installed; training may
    run on any backend).

    Args:
        log_dir: the folder of the event files.
        images: optional batch of inputs (up to `max_images` are shown).
        every: epochs between attention images, >= 1.
        max_images: examples shown per pair.

    Example:

    ```python
    board = keras_kd.callbacks.DistillationTensorBoard(
        "logs/kd", images=x_val[:4], every=2)
    distiller.fit(train_ds, epochs=10, callbacks=[board])
    # tensorboard --logdir logs/kd
    ```
    """

    def __init__(self, log_dir, images=None, every=1, max_images=4):
        super().__init__()
        for argument, value in (("every", every), ("max_images", max_images)):
            if isinstance(value, bool) or not isinstance(value, int) or (
                    value < 1):
                raise ValueError(f"Argument `{argument}` must be an integer "
                                 f">= 1. Received: {argument}={value!r}")
        try:
            import tensorboard  # noqa: F401
        except ImportError as e:
            raise ImportError(
                "DistillationTensorBoard writes TensorBoard event files: pip "
                "install 'keras_kd[tensorboard]'") from e
        self.log_dir = str(log_dir)
        self.images = images
        self.every = every
        self.max_images = max_images
        self._writer = None

    def _summary(self):
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        return tf.summary, self._writer

    def on_epoch_end(self, epoch, logs=None):
        summary, writer = self._summary()
        with writer.as_default(step=epoch):
            for key, value in (logs or {}).items():
                if key.endswith("loss"):
                    summary.scalar(f"terms/{key}", float(value))
            if self.images is not None and epoch % self.every == 0:
                for tag, picture in self.attention_images():
                    summary.image(tag, picture, max_outputs=self.max_images)
        writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def attention_images(self):
        """`[(tag, (n, height, 2·width + 1, 1) float images)]` for each
        pair of each attention term of the Distiller."""
        distiller = self.model
        images = keras.tree.map_structure(
            lambda x: np.asarray(x)[:self.max_images], self.images)
        found = []
        for term in distiller.terms:
            transfer = isinstance(term, AttentionTransferTerm)
            if not transfer and term.tap_kind != ATTENTION_PROBABILITIES:
                continue
            kind = term.tap_kind
            for pair in term.pairs:
                teacher = distiller.teachers[pair.teacher_index]
                maps = [_map(_tap(model, path, kind, images), transfer)
                        for model, path in ((teacher, pair.teacher_layer),
                                            (distiller.student,
                                             pair.student_layer))]
                found.append((f"attention/{term.name}/{pair.teacher_layer}"
                              f" | {pair.student_layer}", _side_by_side(
                                  *maps)))
        return found


def _tap(model, path, kind, inputs):
    tap = Tap(path, kind)
    with LayerCapture(model, [tap]) as capture:
        model(inputs, training=False)
    return capture.result()[tap].value


def _map(value, transfer):
    """`(n, h, w)` NumPy maps scaled to [0, 1] per example."""
    if transfer:
        value = attention_map(value)
        if len(value.shape) == 2:  # sequences: one row
            value = value[:, None, :]
    else:  # (n, heads, queries, keys) probabilities
        value = ops.mean(ops.cast(value, "float32"), axis=1)
    value = np.asarray(ops.convert_to_numpy(value), np.float32)
    low = value.min(axis=(1, 2), keepdims=True)
    high = value.max(axis=(1, 2), keepdims=True)
    return (value - low) / np.maximum(high - low, 1e-12)


def _side_by_side(teacher, student):
    height, width = teacher.shape[1:]
    rows = (np.arange(height) * student.shape[1] // height)
    cols = (np.arange(width) * student.shape[2] // width)
    student = student[:, rows][:, :, cols]  # nearest, to the teacher's size
    gap = np.ones((len(teacher), height, 1), np.float32)
    return np.concatenate([teacher, gap, student], axis=2)[..., None]

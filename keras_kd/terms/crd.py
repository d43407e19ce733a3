"""Contrastive representation distillation, with its memory bank."""

import math

import keras
from keras import ops

from keras_kd.terms.feature_relation import flat_features
from keras_kd.terms.feature_relation import l2_normalize
from keras_kd.terms.layer_pair_term import LayerPairTerm
from keras_kd.utils.validation import check_positive
from keras_kd.utils.validation import check_unit_interval


def _check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Argument `{name}` must be a positive integer. "
                         f"Received: {name}={value!r}")
    return value


@keras.saving.register_keras_serializable(package="keras_kd")
class CRD(LayerPairTerm):
    """CRD: the student's embedding of an example must pick out the
    teacher's embedding of the same example among `negatives` others.

    Both features are flattened, projected to `feature_dim` by a linear
    head each and L2-normalised (`v_s`, `v_t`). Two memory banks keep one
    embedding per training example (the student's, the teacher's), updated
    with momentum. For each example, the positive is its own memory entry
    and `negatives` entries are drawn uniformly; the scores are
    `exp(⟨m, v⟩ / T) / Z` (Z estimated once, on the first batch, as the mean
    score times the number of examples), and the loss is the NCE loss of
    the paper's Eq. 18 in both directions (teacher embedding against the
    student memory, and the reverse): per example `−log h(pos) −
    Σ_neg log(1 − h(neg))` with `h(x) = x / (x + K/N)`, what the authors'
    code and torchdistill's `CRDLoss` compute. The heads and the memory
    live in the term, outside the student. Per example: `sample_weight` is
    honoured.

    **Example indices.** The memory needs to know which training example
    each row of the batch is: give the labels as `{"y": labels, "index":
    ids}`, `ids` an integer in `[0, num_examples)` per example, the same
    for the same example in every epoch, e.g.

    ```python
    ids = np.arange(len(x_train))
    distiller.fit(x_train, {"y": y_train, "index": ids}, ...)
    ```

    A `tf.data` pipeline yields `(x, {"y": y, "index": ids})`. Without
    indices the term raises a clear error. (Stored teacher values from
    `precompute` do not carry indices: CRD needs a live teacher.)

    Reference: Tian, Krishnan & Isola, "Contrastive Representation
    Distillation", ICLR 2020 (feature_dim 128, 16,384 negatives, T = 0.07,
    momentum 0.5, weight β = 0.8).

    Args:
        teacher_layer, student_layer: the penultimate features.
        num_examples: `N`, the number of training examples (the memory).
        feature_dim: the embedding width.
        negatives: `K`, negatives per example.
        temperature: `T > 0`.
        momentum: of the memory update, in [0, 1].
        weight, name: as for every term (weight 0.8, name `"crd"`).
    """

    default_weight = 0.8

    def __init__(self, teacher_layer, student_layer, num_examples,
                 feature_dim=128, negatives=16384, temperature=0.07,
                 momentum=0.5, seed=None, weight=None, name="crd", **kwargs):
        super().__init__(teacher_layer, student_layer, weight=weight,
                         name=name, **kwargs)
        self.num_examples = _check_count("num_examples", num_examples)
        self.feature_dim = _check_count("feature_dim", feature_dim)
        self.negatives = _check_count("negatives", negatives)
        self.temperature = check_positive("temperature", temperature)
        self.momentum = check_unit_interval("momentum", momentum)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.student_head = self.teacher_head = None

    def build(self, teacher_shapes, student_shapes):
        def width(shape):
            return math.prod(shape[1:])

        self.student_head = keras.layers.Dense(
            self.feature_dim, name=f"{self.name}_student_head",
            dtype="float32")
        self.student_head.build((None, width(student_shapes[
            self.student_layer])))
        self.teacher_head = keras.layers.Dense(
            self.feature_dim, name=f"{self.name}_teacher_head",
            dtype="float32")
        self.teacher_head.build((None, width(teacher_shapes[
            self.teacher_layer])))
        bound = 1.0 / math.sqrt(self.feature_dim / 3)
        shape = (self.num_examples, self.feature_dim)
        self.student_memory = self.add_weight(
            name="student_memory", shape=shape, trainable=False,
            initializer=keras.initializers.RandomUniform(-bound, bound,
                                                         seed=self.seed))
        self.teacher_memory = self.add_weight(
            name="teacher_memory", shape=shape, trainable=False,
            initializer=keras.initializers.RandomUniform(-bound, bound,
                                                         seed=self.seed))
        # The normalising constants, set on the first batch (< 0: unset).
        self.normalizers = self.add_weight(
            name="normalizers", shape=(2,), trainable=False,
            initializer=keras.initializers.Constant(-1.0))

    def compute_loss(self, teacher, student, sample_weight=None):
        if student.indices is None:
            raise ValueError(
                "CRD needs each example's index in the training set: give "
                "the labels as {'y': labels, 'index': ids} (see the CRD "
                "docstring).")
        indices = ops.reshape(ops.cast(student.indices, "int32"), (-1,))
        v_s = l2_normalize(self.student_head(flat_features(
            student[self.student_layer])))
        v_t = l2_normalize(self.teacher_head(flat_features(ops.stop_gradient(
            teacher[self.teacher_layer]))))
        negatives = keras.random.randint(
            (ops.shape(indices)[0], self.negatives), 0, self.num_examples,
            seed=self.seed_generator, dtype="int32")
        contrast = ops.concatenate([indices[:, None], negatives], axis=1)
        loss = self.contrast_loss(v_s, v_t, indices, contrast)
        return loss

    def contrast_loss(self, v_s, v_t, indices, contrast):
        """Per-example NCE loss of both directions for given contrast
        indices `(batch, 1 + K)` (the positive first), updating the memory
        banks."""
        student_memory = ops.convert_to_tensor(self.student_memory)
        teacher_memory = ops.convert_to_tensor(self.teacher_memory)
        scores_t = ops.exp(ops.einsum(
            "bkd,bd->bk", ops.take(student_memory, contrast, axis=0),
            v_t) / self.temperature)
        scores_s = ops.exp(ops.einsum(
            "bkd,bd->bk", ops.take(teacher_memory, contrast, axis=0),
            v_s) / self.temperature)
        estimate = ops.stop_gradient(ops.stack([
            ops.mean(scores_s), ops.mean(scores_t)]) * self.num_examples)
        current = ops.convert_to_tensor(self.normalizers)
        normalizers = ops.where(current < 0, estimate, current)
        self.normalizers.assign(normalizers)
        scores_s = scores_s / normalizers[0]
        scores_t = scores_t / normalizers[1]
        self._update_memory(self.student_memory, student_memory, indices,
                            v_s)
        self._update_memory(self.teacher_memory, teacher_memory, indices,
                            v_t)
        return _nce(scores_s, self.negatives, self.num_examples) + _nce(
            scores_t, self.negatives, self.num_examples)

    def _update_memory(self, variable, memory, indices, embeddings):
        old = ops.take(memory, indices, axis=0)
        new = l2_normalize(self.momentum * old + (1.0 - self.momentum)
                           * ops.stop_gradient(embeddings))
        variable.assign(ops.scatter_update(memory, indices[:, None], new))

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_examples": self.num_examples,
            "feature_dim": self.feature_dim, "negatives": self.negatives,
            "temperature": self.temperature, "momentum": self.momentum,
            "seed": self.seed})
        return config


def _nce(scores, negatives, num_examples, eps=1e-7):
    noise = negatives / num_examples
    positive = scores[:, 0]
    log_positive = ops.log(positive / (positive + noise + eps))
    log_negative = ops.log(noise / (scores[:, 1:] + noise + eps))
    return -(log_positive + ops.sum(log_negative, axis=1))

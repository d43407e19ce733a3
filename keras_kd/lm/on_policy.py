"""On-policy distillation of causal LMs (GKD): the student learns on what
it generates itself."""

import keras
import numpy as np
from keras import ops

from keras_kd.distiller import Distiller
from keras_kd.lm.sampling import PADDING_MASK
from keras_kd.lm.sampling import RESPONSE_MASK
from keras_kd.lm.sampling import TOKEN_IDS
from keras_kd.lm.sampling import check_max_new_tokens
from keras_kd.lm.sampling import check_sequences
from keras_kd.lm.sampling import continue_prompts
from keras_kd.losses.generalized_jsd import GeneralizedJSD
from keras_kd.losses.logits_divergence import LogitsDivergence
from keras_kd.terms.soft_targets import SoftTargetTerm
from keras_kd.terms.term import as_term_list
from keras_kd.utils import compat
from keras_kd.utils.validation import check_non_negative
from keras_kd.utils.validation import check_unit_interval

SEQUENCE_KEYS = (TOKEN_IDS, PADDING_MASK, RESPONSE_MASK)


@keras.saving.register_keras_serializable(package="keras_kd")
class OnPolicyDistiller(Distiller):
    """Generalized knowledge distillation (GKD) of a causal LM.

    Trains on *sequences* `{"token_ids", "padding_mask", "response_mask"}`
    (`keras_kd.lm.sequences`; `fit(sequences)`, no `y`). In each training
    batch, with probability `on_policy_fraction`, the student first
    continues every prompt (the valid tokens outside `response_mask`) by up
    to `max_new_tokens` tokens sampled at `sampling_temperature`, in one
    compiled loop (`keras_kd.lm.sample_continuations`); the teacher then
    scores those tokens and `divergence` is taken between the teacher's and
    the student's next-token distributions at the positions that predict
    them, and nowhere else. The other batches use the dataset's own
    responses (supervised KD on fixed outputs). `evaluate` never samples.

    ```
    loss = alpha · CE(next tokens; off-policy batches only)
         + (1 − alpha) · divergence(t, s)
           over the positions predicting response tokens
    ```

    The default divergence is `GeneralizedJSD(beta=0.5)`; `ReverseKL` with
    `on_policy_fraction=1` is on-policy reverse KL (MiniLLM's objective
    without its policy-gradient estimator). Teacher values cannot be
    precomputed: the teacher scores tokens that exist only in the step.

    Reference: Agarwal et al., "On-Policy Distillation of Language Models:
    Learning from Self-Generated Mistakes" (GKD), ICLR 2024; Gu et al.,
    "MiniLLM", ICLR 2024.

    Args:
        teacher: a keras-hub `CausalLM` (`preprocessor=None`) or any model
            mapping `{"token_ids", "padding_mask"}` to `(batch, steps,
            vocab)` logits.
        student: the same kind of model, same vocabulary.
        divergence: a `keras_kd.losses.LogitsDivergence` (its
            temperature is the divergence's, not the sampling one).
        on_policy_fraction: the share of training batches the student
            samples, in [0, 1] (GKD's λ).
        max_new_tokens: tokens sampled after each prompt (within the
            batch's window of `steps`).
        sampling_temperature: the student's sampling temperature (0:
            greedy).
        seed: seeds the batch choice and the sampling.
        terms: further terms (hints, attention maps between decoder
            layers); they see the same sequences.

    Example:

    ```python
    distiller = keras_kd.lm.OnPolicyDistiller(
        teacher, student, on_policy_fraction=0.5, max_new_tokens=32)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    distiller.fit(sequences, batch_size=16, epochs=2)
    ```
    """

    def __init__(self, teacher, student, divergence=None,
                 on_policy_fraction=0.5, max_new_tokens=32,
                 sampling_temperature=1.0, seed=None, terms=None,
                 name="on_policy_distiller", **kwargs):
        divergence = GeneralizedJSD(beta=0.5, temperature=1.0) if (
            divergence is None) else divergence
        if not isinstance(divergence, LogitsDivergence):
            raise ValueError(
                "Argument `divergence` must be a keras_kd.losses."
                "LogitsDivergence (SoftTargetKD, ReverseKL, GeneralizedJSD, "
                f"...). Received: divergence={divergence!r}")
        self.divergence = divergence
        self.on_policy_fraction = check_unit_interval("on_policy_fraction",
                                                      on_policy_fraction)
        self.max_new_tokens = check_max_new_tokens(max_new_tokens)
        self.sampling_temperature = check_non_negative(
            "sampling_temperature", sampling_temperature)
        self.seed = seed
        self._extra_terms = as_term_list(terms)
        super().__init__(teacher, student, name=name, terms=[
            SoftTargetTerm(loss_fn=divergence)] + self._extra_terms,
            **kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compile(self, optimizer="adam", loss=None, metrics=None, alpha=0.0,
                **kwargs):
        """As `Distiller.compile`, with `alpha = 0` (divergence only, as in
        GKD) by default; `alpha > 0` adds next-token cross-entropy on the
        dataset's responses in the off-policy batches."""
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics,
                        alpha=alpha, **kwargs)

    def call(self, inputs, training=None):
        """The student's logits on the step's sequences (sampled by the
        student in on-policy batches), and those sequences."""
        sequences = {key: inputs[key] for key in SEQUENCE_KEYS} if (
            isinstance(inputs, dict) and set(SEQUENCE_KEYS) <= set(inputs)
        ) else check_sequences(inputs, "x", SEQUENCE_KEYS)
        ids = ops.cast(sequences[TOKEN_IDS], "int32")
        valid = ops.cast(sequences[PADDING_MASK], "bool")
        response = ops.logical_and(
            valid, ops.cast(sequences[RESPONSE_MASK], "bool"))
        sampled = ops.zeros((), "float32")
        if training and self.on_policy_fraction > 0:
            ids, valid, response, sampled = self._maybe_sample(ids, valid,
                                                               response)
        outputs = super().call({TOKEN_IDS: ids, PADDING_MASK: valid},
                               training=training)
        outputs["sequences"] = {TOKEN_IDS: ids, PADDING_MASK: valid,
                                RESPONSE_MASK: response}
        outputs["on_policy"] = sampled
        return outputs

    def _maybe_sample(self, ids, valid, response):
        # Every draw happens here, outside the branch and the loop.
        uniform = keras.random.uniform(ops.shape(ids),
                                       seed=self.seed_generator)
        coin = keras.random.uniform((), seed=self.seed_generator)
        prompt = ops.logical_and(valid, ops.logical_not(response))

        def sample():
            out = continue_prompts(self.student, ids, prompt,
                                   self.max_new_tokens,
                                   self.sampling_temperature, uniform)
            return (out[TOKEN_IDS], out[PADDING_MASK], out[RESPONSE_MASK],
                    ops.ones((), "float32"))

        if self.on_policy_fraction == 1:
            return sample()
        return ops.cond(coin < self.on_policy_fraction, sample,
                        lambda: (ids, valid, response,
                                 ops.zeros((), "float32")))

    def hard_label_scale(self, y_pred):
        """No hard-label loss in on-policy steps: their next tokens are
        the student's own samples."""
        return 1.0 - y_pred["on_policy"]

    def loss_inputs(self, x, y, y_pred, sample_weight):
        """Next-token labels of the step's sequences, and the mask of the
        positions that predict a response token."""
        sequences = y_pred["sequences"]
        ids = sequences[TOKEN_IDS]
        learn = ops.logical_and(sequences[RESPONSE_MASK],
                                sequences[PADDING_MASK])
        last = ops.zeros_like(ids[:, :1])
        labels = ops.concatenate([ids[:, 1:], last], axis=1)
        mask = ops.concatenate([learn[:, 1:], ops.cast(last, "bool")],
                               axis=1)
        inputs = {TOKEN_IDS: ids, PADDING_MASK: sequences[PADDING_MASK]}
        return inputs, labels, sample_weight, mask

    def _check_data(self, x, y, argument):
        if y is not None or compat.dataset_label_spec(x) is not None:
            raise ValueError(
                "OnPolicyDistiller trains on sequences alone: pass "
                "`fit(sequences)` with `{'token_ids', 'padding_mask', "
                "'response_mask'}` and no `y` (nor labels or precomputed "
                "teacher values in a dataset: the teacher scores the tokens "
                f"the student samples). Received: y of type "
                f"{type(y).__name__}")
        if isinstance(x, dict):
            check_sequences(x, "x", SEQUENCE_KEYS)
            _check_prompts(x)

    def precompute(self, *args, **kwargs):
        raise NotImplementedError(
            "OnPolicyDistiller runs its teacher live: the tokens it scores "
            "are sampled in the step. Use keras_kd.Distiller.precompute for "
            "off-policy token-level distillation.")

    def get_config(self):
        config = super().get_config()
        config["terms"] = [keras.saving.serialize_keras_object(t)
                           for t in self._extra_terms]
        config.update({
            "divergence": keras.saving.serialize_keras_object(
                self.divergence),
            "on_policy_fraction": self.on_policy_fraction,
            "max_new_tokens": self.max_new_tokens,
            "sampling_temperature": self.sampling_temperature,
            "seed": self.seed})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["divergence"] = keras.saving.deserialize_keras_object(
            config["divergence"])
        return super().from_config(config)


def _check_prompts(sequences):
    """Array sequences: responses inside the valid tokens, and a prompt of
    at least one token in every row."""
    valid = np.asarray(sequences[PADDING_MASK], bool)
    response = np.asarray(sequences[RESPONSE_MASK], bool)
    if (response & ~valid).any():
        raise ValueError("`x['response_mask']` marks padded positions: a "
                         "response token must also be valid in "
                         "`x['padding_mask']`.")
    empty = np.flatnonzero((valid & ~response).sum(1) == 0)
    if len(empty):
        raise ValueError(
            "Every sequence needs a prompt of at least one token (a valid "
            "token outside `response_mask`, e.g. a start token). Rows "
            f"without one: {empty[:10].tolist()}")

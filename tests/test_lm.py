"""keras_kd.lm: compiled sampling, transfer sets, on-policy distillation
(GKD) and perplexity, on random-init keras-hub GPT-2s (no downloads)."""

import os

import keras
import numpy as np
import pytest

import keras_kd
from keras_kd.lm.sampling import generation_mask
from numpy_reference import divergence
from numpy_reference import log_softmax

VOCABULARY, WINDOW = 48, 14


def causal_lm(layers, hidden, name, dropout=0.0, scale=1.0):
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY, num_layers=layers, num_heads=2,
        hidden_dim=hidden, intermediate_dim=2 * hidden, dropout=dropout,
        max_sequence_length=WINDOW, name=f"{name}_backbone")
    model = keras_hub.models.GPT2CausalLM(backbone=backbone,
                                          preprocessor=None, name=name)
    if scale != 1.0:  # sharper distributions than random init gives
        embedding = backbone.token_embedding
        embedding.embeddings.assign(embedding.embeddings * scale)
    return model


@pytest.fixture(scope="module")
def pair():
    keras.utils.set_random_seed(0)
    return (causal_lm(2, 32, "teacher", scale=6.0),
            causal_lm(1, 16, "student", scale=4.0))


def prompts(rows=6, width=4, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCABULARY, (rows, width)).astype("int32")
    lengths = rng.integers(1, width + 1, rows)
    mask = np.arange(width)[None] < lengths[:, None]
    return {"token_ids": np.where(mask, ids, 0), "padding_mask": mask}


def padded(batch, width):
    return {key: np.pad(value, ((0, 0), (0, width - value.shape[1])))
            for key, value in batch.items()}


def test_greedy_sampling_equals_keras_hub_generate(pair):
    _, student = pair
    batch = padded(prompts(), WINDOW)
    ours = keras_kd.lm.sample_continuations(student, batch, WINDOW,
                                            temperature=0.0)
    student.compile(sampler="greedy")
    theirs = student.generate(batch, stop_token_ids=None)
    np.testing.assert_array_equal(np.asarray(ours["token_ids"]),
                                  theirs["token_ids"])
    assert np.asarray(ours["padding_mask"]).all()
    np.testing.assert_array_equal(np.asarray(ours["response_mask"]),
                                  ~batch["padding_mask"])


def test_sampled_continuations_are_seeded_and_stay_after_the_prompt(pair):
    _, student = pair
    batch = padded(prompts(), WINDOW)
    first, again, other = (keras_kd.lm.sample_continuations(
        student, batch, 5, temperature=1.0, seed=seed) for seed in (1, 1, 2))
    ids = np.asarray(first["token_ids"])
    np.testing.assert_array_equal(ids, np.asarray(again["token_ids"]))
    assert (ids != np.asarray(other["token_ids"])).any()
    response = np.asarray(first["response_mask"])
    lengths = batch["padding_mask"].sum(1)
    expected = np.zeros_like(response)
    for row, length in enumerate(lengths):
        expected[row, length:length + 5] = True
    np.testing.assert_array_equal(response, expected)
    prompt = batch["padding_mask"]
    np.testing.assert_array_equal(ids[prompt], batch["token_ids"][prompt])
    assert (ids[~(prompt | response)] == 0).all()


def test_sampling_follows_softmax_over_temperature():
    """Inverse-CDF draws from a model with fixed logits (the full-window
    path, no cache) have the frequencies of softmax(logits / T)."""
    logits = np.linspace(-2.0, 2.0, 6).astype("float32")
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="bool", name="padding_mask")
    ones = keras.layers.Lambda(
        lambda t: keras.ops.ones_like(keras.ops.cast(t, "float32")))(
        token_ids)
    outputs = keras.layers.Lambda(
        lambda o: keras.ops.expand_dims(o, -1) * logits)(ones)
    model = keras.Model({"token_ids": token_ids, "padding_mask": mask},
                        outputs)
    rows = 4000
    batch = {"token_ids": np.ones((rows, 2), "int32"),
             "padding_mask": np.array([[True, False]] * rows)}
    for temperature in (0.5, 2.0):
        drawn = np.asarray(keras_kd.lm.sample_continuations(
            model, batch, 1, temperature=temperature, seed=0)["token_ids"])
        counts = np.bincount(drawn[:, 1], minlength=6) / rows
        expected = np.exp(logits / temperature)
        expected /= expected.sum()
        # 4 standard errors of a binomial frequency.
        error = 4 * np.sqrt(expected * (1 - expected) / rows)
        assert (np.abs(counts - expected) < error).all(), (counts, expected)


def test_stop_tokens_end_a_continuation(pair):
    _, student = pair
    batch = padded(prompts(), WINDOW)
    free = np.asarray(keras_kd.lm.sample_continuations(
        student, batch, 8, temperature=0.0)["token_ids"])
    lengths = batch["padding_mask"].sum(1)
    stop = int(free[0, lengths[0] + 2])  # row 0's third new token
    out = keras_kd.lm.sample_continuations(student, batch, 8,
                                           temperature=0.0,
                                           stop_token_ids=[stop])
    response = np.asarray(out["response_mask"])
    first = lengths[0] + list(free[0, lengths[0]:]).index(stop)
    assert response[0].sum() == first - lengths[0] + 1
    assert not response[0, first + 1:].any()


def test_generation_mask_counts_from_each_prompt():
    mask = np.array([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(np.asarray(generation_mask(mask, 2)),
                                  [[0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])


def test_transfer_set_is_the_teachers_greedy_generation(pair, tmp_path):
    teacher, _ = pair
    batch = prompts()
    path = tmp_path / "transfer.npz"
    sequences = keras_kd.lm.generate_transfer_set(
        teacher, batch, max_new_tokens=WINDOW - 4, batch_size=4, path=path,
        verbose=0)
    assert sequences["token_ids"].shape == (6, WINDOW)
    teacher.compile(sampler="greedy")
    reference = teacher.generate(padded(batch, WINDOW), stop_token_ids=None)
    valid = sequences["padding_mask"]
    np.testing.assert_array_equal(sequences["token_ids"][valid],
                                  reference["token_ids"][valid])
    with np.load(path) as stored:
        for key, value in sequences.items():
            np.testing.assert_array_equal(stored[key], value)
    assert sorted(os.listdir(tmp_path)) == ["transfer.npz"]  # no temp file
    sampled = [keras_kd.lm.generate_transfer_set(
        teacher, batch, 6, temperature=1.0, seed=5, verbose=0)["token_ids"]
        for _ in range(2)]
    np.testing.assert_array_equal(*sampled)


@pytest.mark.parametrize("kwargs,match", [
    ({"max_new_tokens": 0}, "max_new_tokens=0"),
    ({"temperature": -1.0}, "temperature=-1.0"),
    ({"path": "x.txt"}, "path='x.txt'"),
])
def test_transfer_set_bad_arguments(pair, kwargs, match):
    teacher, _ = pair
    kwargs = {"max_new_tokens": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        keras_kd.lm.generate_transfer_set(teacher, prompts(), verbose=0,
                                          **kwargs)


def test_next_token_data_and_perplexity_against_numpy(pair):
    teacher, _ = pair
    sequences = keras_kd.lm.generate_transfer_set(teacher, prompts(), 6,
                                                  verbose=0)
    x, y, weights = keras_kd.lm.next_token_data(sequences)
    np.testing.assert_array_equal(y, sequences["token_ids"][:, 1:])
    np.testing.assert_array_equal(weights,
                                  sequences["response_mask"][:, 1:])
    _, _, every = keras_kd.lm.next_token_data(sequences, loss_on="all")
    np.testing.assert_array_equal(every, sequences["padding_mask"][:, 1:])
    logits = np.asarray(teacher(x, training=False), "float64")
    picked = np.take_along_axis(log_softmax(logits), y[..., None], -1)[..., 0]
    expected = np.exp(-(picked * weights).sum() / weights.sum())
    assert keras_kd.lm.perplexity(teacher, x, y, weights,
                                  batch_size=4) == pytest.approx(expected,
                                                                 rel=1e-5)
    with pytest.raises(ValueError, match="loss_on='some'"):
        keras_kd.lm.next_token_data(sequences, loss_on="some")


def on_policy(pair, **kwargs):
    teacher, student = pair
    distiller = keras_kd.lm.OnPolicyDistiller(
        teacher, student, **{"max_new_tokens": 6, "seed": 0, **kwargs})
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))
    return distiller


def dataset_sequences(pair):
    teacher, _ = pair
    return keras_kd.lm.generate_transfer_set(
        teacher, prompts(), WINDOW - 4, temperature=1.0, seed=9, verbose=0)


def masked_jsd(teacher, student, sequences):
    x = {k: sequences[k] for k in ("token_ids", "padding_mask")}
    t = np.asarray(teacher(x, training=False), "float64")
    s = np.asarray(student(x, training=False), "float64")
    learn = sequences["response_mask"] & sequences["padding_mask"]
    mask = np.concatenate([learn[:, 1:], np.zeros_like(learn[:, :1])], 1)
    return divergence("jsd", t, s, 1.0, coefficient=0.5, mask=mask)


def test_on_policy_divergence_is_taken_on_the_students_own_tokens(pair):
    """A training step with `on_policy_fraction=1` (greedy, no update)
    logs GJSD on the student's greedy continuations of the prompts, only
    at the positions predicting them."""
    teacher, student = pair
    sequences = dataset_sequences(pair)
    distiller = on_policy(pair, on_policy_fraction=1.0,
                          sampling_temperature=0.0)
    history = distiller.fit(sequences, batch_size=6, epochs=1, verbose=0)
    prompt = {"token_ids": sequences["token_ids"],
              "padding_mask": sequences["padding_mask"]
              & ~sequences["response_mask"]}
    generated = {k: np.asarray(v) for k, v in
                 keras_kd.lm.sample_continuations(
                     student, prompt, 6, temperature=0.0).items()}
    expected = masked_jsd(teacher, student, generated)
    logged = history.history["distillation_loss"][0]
    assert logged == pytest.approx(expected, rel=1e-4)
    assert logged != pytest.approx(masked_jsd(teacher, student, sequences),
                                   rel=1e-2)
    # evaluate never samples: the dataset's own responses.
    logs = distiller.evaluate(sequences, batch_size=6, verbose=0,
                              return_dict=True)
    assert logs["distillation_loss"] == pytest.approx(
        masked_jsd(teacher, student, sequences), rel=1e-4)


def test_generation_inside_a_training_step_runs_without_dropout(pair):
    teacher, _ = pair
    student = causal_lm(1, 16, "dropout_student", dropout=0.5, scale=4.0)
    distiller = keras_kd.lm.OnPolicyDistiller(
        teacher, student, on_policy_fraction=1.0, sampling_temperature=0.0,
        max_new_tokens=6)
    sequences = dataset_sequences(pair)
    inside = distiller(sequences, training=True)["sequences"]
    prompt = {"token_ids": sequences["token_ids"],
              "padding_mask": sequences["padding_mask"]
              & ~sequences["response_mask"]}
    outside = keras_kd.lm.sample_continuations(student, prompt, 6,
                                               temperature=0.0)
    np.testing.assert_array_equal(np.asarray(inside["token_ids"]),
                                  np.asarray(outside["token_ids"]))


def test_off_policy_batches_keep_the_dataset_and_training_moves(pair):
    teacher, student = pair
    sequences = dataset_sequences(pair)
    distiller = on_policy(pair, on_policy_fraction=0.0)
    out = distiller(sequences, training=True)["sequences"]
    for key, value in sequences.items():
        np.testing.assert_array_equal(np.asarray(out[key]), value)
    weights = [w.copy() for w in student.get_weights()]
    distiller = keras_kd.lm.OnPolicyDistiller(
        teacher, student, divergence=keras_kd.losses.ReverseKL(),
        on_policy_fraction=0.5, max_new_tokens=6, seed=0)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = distiller.fit(sequences, batch_size=3, epochs=3, verbose=0)
    losses = history.history["distillation_loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert any((a != b).any() for a, b in zip(weights,
                                              student.get_weights()))
    student.set_weights(weights)


def test_on_policy_config_round_trip(pair):
    distiller = on_policy(pair, divergence=keras_kd.losses.SkewKL(0.2),
                          on_policy_fraction=0.25, sampling_temperature=0.7)
    again = keras_kd.lm.OnPolicyDistiller.from_config(distiller.get_config())
    assert isinstance(again.divergence, keras_kd.losses.SkewKL)
    assert again.divergence.alpha == pytest.approx(0.2)
    assert (again.on_policy_fraction, again.max_new_tokens,
            again.sampling_temperature) == (0.25, 6, 0.7)
    assert [t.name for t in again.terms] == ["distillation"]


@pytest.mark.parametrize("kwargs,match", [
    ({"divergence": "kl_divergence"}, "divergence='kl_divergence'"),
    ({"on_policy_fraction": 1.5}, "on_policy_fraction=1.5"),
    ({"max_new_tokens": 0}, "max_new_tokens=0"),
    ({"sampling_temperature": -0.1}, "sampling_temperature=-0.1"),
])
def test_on_policy_bad_arguments(pair, kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_kd.lm.OnPolicyDistiller(*pair, **kwargs)


def test_on_policy_bad_data(pair):
    distiller = on_policy(pair)
    sequences = dataset_sequences(pair)
    with pytest.raises(ValueError, match="no `y`"):
        distiller.fit(sequences, sequences["token_ids"], verbose=0)
    with pytest.raises(ValueError, match="response_mask"):
        distiller.fit({k: sequences[k] for k in ("token_ids",
                                                 "padding_mask")},
                      verbose=0)
    no_prompt = dict(sequences, response_mask=sequences["padding_mask"])
    with pytest.raises(ValueError, match=r"Rows without one: \[0, 1"):
        distiller.fit(no_prompt, verbose=0)
    with pytest.raises(NotImplementedError, match="runs its teacher live"):
        distiller.precompute(None)


def test_hard_labels_count_in_off_policy_batches_only(pair):
    """With alpha > 0, cross-entropy on the student's own samples would
    reinforce them: on-policy steps drop it, off-policy steps keep it."""
    sequences = dataset_sequences(pair)
    for fraction in (1.0, 0.0):
        distiller = keras_kd.lm.OnPolicyDistiller(
            *pair, on_policy_fraction=fraction, max_new_tokens=6,
            sampling_temperature=0.0)
        distiller.compile(optimizer=keras.optimizers.SGD(0.0), alpha=0.5)
        logs = {k: v[0] for k, v in distiller.fit(
            sequences, batch_size=6, epochs=1, verbose=0).history.items()}
        hard = 0.5 * logs["student_loss"] if fraction == 0.0 else 0.0
        assert logs["student_loss"] > 0.1
        assert logs["loss"] == pytest.approx(
            hard + 0.5 * logs["distillation_loss"], rel=1e-5)

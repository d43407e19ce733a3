"""The published methods of `keras_kd.terms` against NumPy references
written from the papers (and torchdistill's variants, `mode="code"`);
`benchmarks/torchdistill_parity.py` checks the same terms against
torchdistill itself."""

import math

import keras
import numpy as np
import pytest
from conftest import make_cnn

import keras_kd
from keras_kd.terms import TapValues
from keras_kd.terms.vid import variational_nll

RTOL = 1e-5


def side(values=None, logits=None, labels=None, masks=None):
    values = {k: keras.ops.convert_to_tensor(np.asarray(v, "float32"))
              for k, v in (values or {}).items()}
    if logits is not None:
        logits = (
            [keras.ops.convert_to_tensor(np.asarray(t, "float32"))
             for t in logits] if isinstance(logits, list)
            else keras.ops.convert_to_tensor(np.asarray(logits, "float32")))
    return TapValues(values, masks or {}, logits, labels)


def loss(term, teacher, student, sample_weight=None):
    return float(keras.ops.convert_to_numpy(
        term.reduced_loss(teacher, student, sample_weight=sample_weight)))


@pytest.fixture
def maps():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(6, 4, 4, 5)), rng.normal(size=(6, 4, 4, 3)))


@pytest.fixture
def logits():
    rng = np.random.default_rng(1)
    return (3 * rng.normal(size=(6, 5)), 3 * rng.normal(size=(6, 5)),
            rng.integers(0, 5, 6).astype("int32"))


def flat(x):
    return x.reshape(len(x), -1).astype(np.float64)


def huber(a, b):
    d = np.abs(a - b)
    return np.mean(np.where(d < 1, 0.5 * d ** 2, d - 0.5))


def softmax(z, axis=-1):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


# --- feature and relation methods ----------------------------------------

def numpy_rkd(t, s, wd=25.0, wa=50.0):
    def distances(f):
        d = np.sqrt(((f[:, None] - f[None]) ** 2).sum(-1))
        return d / d[d > 0].mean()

    def angles(f):
        e = f[None, :, :] - f[:, None, :]  # e[i, j] = f_j - f_i
        norm = np.linalg.norm(e, axis=-1, keepdims=True)
        e = e / np.maximum(norm, 1e-12)
        return np.einsum("ijd,ikd->ijk", e, e).reshape(-1)

    t, s = flat(t), flat(s)
    return (wd * huber(distances(s), distances(t))
            + wa * huber(angles(s), angles(t)))


def numpy_pkt(t, s, eps=1e-7):
    def conditional(f):
        f = f / (np.linalg.norm(f, axis=1, keepdims=True) + eps)
        k = (f @ f.T + 1) / 2
        return k / k.sum(1, keepdims=True)

    p, q = conditional(flat(t)), conditional(flat(s))
    return np.mean(p * np.log((p + eps) / (q + eps)))


def numpy_sp(t, s, norm_ord):
    def gram(f):
        g = f @ f.T
        return g / np.linalg.norm(g, ord=norm_ord, axis=1, keepdims=True)

    b = len(t)
    return np.sum((gram(flat(t)) - gram(flat(s))) ** 2) / b ** 2


def numpy_cc(t, s, gamma=0.4, order=2):
    def kernel(f):
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        inner = f @ f.T
        return sum(math.exp(-2 * gamma) * (2 * gamma) ** p
                   / math.factorial(p) * inner ** p
                   for p in range(order + 1))

    n = len(t)
    return np.sum((kernel(flat(t)) - kernel(flat(s))) ** 2) / n ** 2


def test_rkd_equals_numpy(maps):
    t, s = maps
    term = keras_kd.terms.RKD("t", "s")
    assert loss(term, side({"t": t}), side({"s": s})) == pytest.approx(
        numpy_rkd(t, s), rel=RTOL)
    only_angles = keras_kd.terms.RKD("t", "s", distance_weight=0.0,
                                     angle_weight=1.0)
    assert loss(only_angles, side({"t": t}), side({"s": s})) == (
        pytest.approx(numpy_rkd(t, s, 0.0, 1.0), rel=RTOL))


def test_pkt_equals_numpy(maps):
    t, s = maps
    assert loss(keras_kd.terms.PKT("t", "s"), side({"t": t}),
                side({"s": s})) == pytest.approx(numpy_pkt(t, s), rel=RTOL)


@pytest.mark.parametrize("mode,norm_ord", [("paper", 2), ("code", 1)])
def test_similarity_preserving_equals_numpy(maps, mode, norm_ord):
    t, s = maps
    term = keras_kd.terms.SimilarityPreserving("t", "s", mode=mode)
    assert loss(term, side({"t": t}), side({"s": s})) == pytest.approx(
        numpy_sp(t, s, norm_ord), rel=RTOL)
    assert float(keras.ops.convert_to_numpy(term.weight)) == 3000.0


def test_correlation_congruence_equals_numpy(maps):
    t, s = maps
    paper = keras_kd.terms.CorrelationCongruence("t", "s")
    assert loss(paper, side({"t": t}), side({"s": s})) == pytest.approx(
        numpy_cc(t, s), rel=RTOL)
    code = keras_kd.terms.CorrelationCongruence("t", "s", mode="code")
    expected = np.linalg.norm(flat(t) @ flat(t).T - flat(s) @ flat(s).T) / (
        len(t) ** 2)
    assert loss(code, side({"t": t}), side({"s": s})) == pytest.approx(
        expected, rel=RTOL)


def numpy_fsp(first, second):
    if first.shape[1] != second.shape[1]:
        k = first.shape[1] // second.shape[1]
        b, h, w, c = first.shape
        first = first.reshape(b, h // k, k, w // k, k, c).max(axis=(2, 4))
    b = len(first)
    f1 = first.reshape(b, -1, first.shape[-1])
    f2 = second.reshape(b, -1, second.shape[-1])
    return np.einsum("bpm,bpn->bmn", f1, f2) / f1.shape[1]


@pytest.mark.parametrize("mode", ["paper", "code"])
def test_fsp_equals_numpy(mode):
    rng = np.random.default_rng(2)
    t1, t2 = rng.normal(size=(4, 8, 8, 3)), rng.normal(size=(4, 4, 4, 5))
    s1, s2 = rng.normal(size=(4, 8, 8, 3)), rng.normal(size=(4, 4, 4, 5))
    difference = numpy_fsp(t1, t2) - numpy_fsp(s1, s2)
    if mode == "paper":
        per_example = np.sum(difference ** 2, axis=(1, 2))
    else:
        per_example = np.linalg.norm(difference, axis=1).sum(axis=1)
    term = keras_kd.terms.FSP([(("t1", "t2"), ("s1", "s2"), 0.5)],
                              mode=mode)
    teacher, student = side({"t1": t1, "t2": t2}), side({"s1": s1, "s2": s2})
    assert loss(term, teacher, student) == pytest.approx(
        0.5 * per_example.mean(), rel=RTOL)
    weights = np.array([1.0, 0.0, 2.0, 1.0], "float32")
    expected = np.sum(weights * 0.5 * per_example) / len(weights)
    assert loss(term, teacher, student, sample_weight=weights) == (
        pytest.approx(expected, rel=RTOL))


def test_vid_negative_log_likelihood_and_its_parameters():
    rng = np.random.default_rng(3)
    t = rng.normal(size=(4, 3, 3, 6)).astype("float32")
    mean = rng.normal(size=t.shape).astype("float32")
    variance = rng.uniform(0.5, 2, size=(6,)).astype("float32")
    expected = 0.5 * ((mean - t) ** 2 / variance + np.log(variance))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(
        variational_nll(t, mean, variance)), expected, rtol=RTOL)
    term = keras_kd.terms.VID("t", "s", hidden=8)
    term.build({"t": (None, 3, 3, 6)}, {"s": (None, 3, 3, 2)})
    np.testing.assert_allclose(keras.ops.convert_to_numpy(term.variance()),
                               np.full(6, 5.0), rtol=1e-5)
    # Its regressor and variances train with the student, outside it.
    assert len(term.trainable_weights) == 7  # 3 kernels, 3 biases, α
    s = rng.normal(size=(4, 3, 3, 2)).astype("float32")
    mu = keras.ops.convert_to_numpy(term.regressor(s))
    expected = (0.5 * ((mu - t) ** 2 / 5.0 + np.log(5.0))).mean(axis=(1, 2,
                                                                      3))
    assert loss(term, side({"t": t}), side({"s": s})) == pytest.approx(
        expected.mean(), rel=1e-4)


def test_srd_equals_numpy_with_the_teachers_own_classifier(data):
    from keras_kd.terms.srd import teacher_head

    x, _ = data
    keras.utils.set_random_seed(0)
    teacher, student = make_cnn(8, "teacher"), make_cnn(4, "student")
    head = teacher_head(teacher, "conv2")
    assert not head.trainable_weights
    term = keras_kd.terms.SRD("conv2", "conv2", classifier=head)
    term.build({"conv2": (None, 6, 6, 8)}, {"conv2": (None, 6, 6, 4)})
    from keras_kd.capture import capture_outputs

    z_t, t = capture_outputs(teacher, ["conv2"], x[:4])
    _, s = capture_outputs(student, ["conv2"], x[:4])
    t, s = np.asarray(t["conv2"]), np.asarray(s["conv2"])
    kernel = keras.ops.convert_to_numpy(term.connector.kernel)[0, 0]
    mapped = np.maximum(s @ kernel, 0)
    feature = ((mapped.mean((1, 2)) - t.mean((1, 2))) ** 2).mean(-1)
    dense = teacher.get_layer("logits")
    w, b = (keras.ops.convert_to_numpy(v) for v in dense.weights)
    logits = mapped.mean((1, 2)) @ w + b
    regression = ((logits - np.asarray(z_t)) ** 2).mean(-1)
    value = loss(term, side({"conv2": t}, logits=[np.asarray(z_t)]),
                 side({"conv2": s}))
    assert value == pytest.approx((feature + regression).mean(), rel=1e-4)
    with pytest.raises(ValueError, match="no layer"):
        teacher_head(teacher, "conv9")
    config = keras_kd.terms.serialize(term)
    assert type(keras_kd.terms.deserialize(config)) is keras_kd.terms.SRD


def numpy_crd(memory_s, memory_t, v_s, v_t, contrast, n, temperature=0.07):
    k = contrast.shape[1] - 1

    def nce(scores):
        noise = k / n
        pos = scores[:, 0]
        return -(np.log(pos / (pos + noise + 1e-7))
                 + np.log(noise / (scores[:, 1:] + noise + 1e-7)).sum(1))

    scores_t = np.exp(np.einsum("bkd,bd->bk", memory_s[contrast], v_t)
                      / temperature)
    scores_s = np.exp(np.einsum("bkd,bd->bk", memory_t[contrast], v_s)
                      / temperature)
    scores_s /= scores_s.mean() * n
    scores_t /= scores_t.mean() * n
    return nce(scores_s) + nce(scores_t)


def test_crd_equals_numpy_and_updates_its_memory():
    rng = np.random.default_rng(4)
    n, d, k = 30, 8, 5
    term = keras_kd.terms.CRD("t", "s", num_examples=n, feature_dim=d,
                              negatives=k)
    term.build({"t": (None, 12)}, {"s": (None, 6)})
    memory_s = rng.uniform(-0.5, 0.5, (n, d)).astype("float32")
    memory_t = rng.uniform(-0.5, 0.5, (n, d)).astype("float32")
    term.student_memory.assign(memory_s)
    term.teacher_memory.assign(memory_t)

    def unit(x):
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(
            "float32")

    v_s, v_t = unit(rng.normal(size=(4, d))), unit(rng.normal(size=(4, d)))
    indices = np.array([3, 7, 11, 29], "int32")
    contrast = np.concatenate([indices[:, None], rng.integers(
        0, n, (4, k))], 1).astype("int32")
    got = keras.ops.convert_to_numpy(term.contrast_loss(v_s, v_t, indices,
                                                        contrast))
    np.testing.assert_allclose(
        got, numpy_crd(memory_s, memory_t, v_s, v_t, contrast, n),
        rtol=1e-4)
    updated = keras.ops.convert_to_numpy(term.student_memory)
    expected = 0.5 * memory_s[indices] + 0.5 * v_s
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(updated[indices], expected, rtol=1e-5)
    untouched = np.setdiff1d(np.arange(n), indices)
    np.testing.assert_array_equal(updated[untouched], memory_s[untouched])


def test_crd_trains_with_example_indices(data):
    import tensorflow as tf

    x, y = data
    keras.utils.set_random_seed(0)
    teacher, student = make_cnn(8, "teacher"), make_cnn(4, "student")
    crd = keras_kd.terms.CRD("gap", "gap", num_examples=len(x),
                             feature_dim=8, negatives=16, seed=1)
    distiller = keras_kd.Distiller(teacher, student, terms=[crd])
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    labels = {"y": y, "index": np.arange(len(x))}
    history = distiller.fit(x, labels, batch_size=8, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["crd_loss"]))
    assert "accuracy" in history.history
    memory = keras.ops.convert_to_numpy(crd.student_memory)
    np.testing.assert_allclose(np.linalg.norm(memory, axis=1), 1.0,
                               rtol=1e-4)  # every example was written
    pipeline = tf.data.Dataset.from_tensor_slices((x, labels)).batch(8)
    distiller.fit(pipeline, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="index"):
        distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)


# --- logit methods ---------------------------------------------------------

def numpy_dkd(t, s, y, alpha=1.0, beta=8.0, temperature=4.0):
    gt = np.eye(t.shape[1])[y]
    p, q = softmax(t / temperature), softmax(s / temperature)
    pb = np.stack([(p * gt).sum(1), (p * (1 - gt)).sum(1)], 1)
    qb = np.stack([(q * gt).sum(1), (q * (1 - gt)).sum(1)], 1)
    tckd = (pb * np.log(pb / qb)).sum(1)
    p2 = softmax(t / temperature - 1000 * gt)
    q2 = softmax(s / temperature - 1000 * gt)
    nckd = np.where(p2 > 0, p2 * (np.log(np.maximum(p2, 1e-300))
                                  - np.log(np.maximum(q2, 1e-300))), 0)
    return temperature ** 2 * (alpha * tckd + beta * nckd.sum(1))


def test_dkd_equals_numpy_and_honours_sample_weight(logits):
    t, s, y = logits
    term = keras_kd.terms.DKD()
    per_example = numpy_dkd(t, s, y)
    teacher, student = side(logits=[t]), side(logits=s, labels=y)
    assert loss(term, teacher, student) == pytest.approx(
        per_example.mean(), rel=RTOL)
    weights = np.array([1, 0, 0, 2, 0, 1], "float32")
    assert loss(term, teacher, student, sample_weight=weights) == (
        pytest.approx(np.sum(weights * per_example) / 6, rel=RTOL))
    one_hot = side(logits=s, labels=np.eye(5, dtype="float32")[y])
    assert loss(term, teacher, one_hot) == pytest.approx(
        per_example.mean(), rel=RTOL)
    with pytest.raises(ValueError, match="labels"):
        loss(term, teacher, side(logits=s))


def test_dist_equals_numpy(logits):
    t, s, _ = logits
    tau = 4.0
    p, q = softmax(t / tau), softmax(s / tau)

    def pearson(a, b):
        a = a - a.mean(1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
        return (a * b).sum(1) / (np.linalg.norm(a, axis=1)
                                 * np.linalg.norm(b, axis=1))

    expected = tau ** 2 * ((1 - pearson(q, p).mean())
                           + (1 - pearson(q.T, p.T).mean()))
    term = keras_kd.terms.DIST(temperature=tau)
    assert loss(term, side(logits=[t]), side(logits=s)) == pytest.approx(
        expected, rel=RTOL)


def test_logit_standardization_equals_numpy(logits):
    t, s, _ = logits

    def z(x):
        std = x.std(1, ddof=1, keepdims=True)
        return (x - x.mean(1, keepdims=True)) / (1e-7 + std)

    temperature = 2.0
    p = softmax(z(t) / temperature)
    log_p = np.log(p)
    log_q = np.log(softmax(z(s) / temperature))
    expected = temperature ** 2 * (p * (log_p - log_q)).sum(1).mean()
    term = keras_kd.terms.LogitStandardization()
    assert loss(term, side(logits=[t]), side(logits=s)) == pytest.approx(
        expected, rel=RTOL)
    # Scale and shift of either side's logits do not change it.
    assert loss(term, side(logits=[3 * t + 5]), side(logits=s)) == (
        pytest.approx(expected, rel=1e-4))
    reverse = keras_kd.terms.LogitStandardization(
        keras_kd.losses.ReverseKL(temperature=2.0))
    expected_reverse = temperature ** 2 * (
        softmax(z(s) / 2) * (log_q - log_p)).sum(1).mean()
    assert loss(reverse, side(logits=[t]), side(logits=s)) == (
        pytest.approx(expected_reverse, rel=RTOL))


def test_logit_terms_refuse_what_they_cannot_read(logits):
    t, s, y = logits
    with pytest.raises(ValueError, match="one teacher"):
        loss(keras_kd.terms.DIST(), side(logits=[t, t]), side(logits=s))
    with pytest.raises(TypeError, match="divergence"):
        keras_kd.terms.LogitStandardization("kl_divergence")


# --- names, configs, arguments, a fit step ---------------------------------

ALL_TERMS = [
    keras_kd.terms.RKD("conv2", "conv2"),
    keras_kd.terms.PKT("gap", "gap"),
    keras_kd.terms.SimilarityPreserving("conv2", "conv2", mode="code"),
    keras_kd.terms.CorrelationCongruence("gap", "gap", gamma=0.3, order=3),
    keras_kd.terms.FSP([(("conv1", "conv2"), ("conv1", "conv2"))]),
    keras_kd.terms.VID("conv2", "conv2", hidden=4),
    keras_kd.terms.DKD(beta=0.5, temperature=1.0),
    keras_kd.terms.DIST(temperature=4.0),
    keras_kd.terms.LogitStandardization(),
    keras_kd.terms.CRD("gap", "gap", num_examples=32, feature_dim=4,
                       negatives=8),
]


@pytest.mark.parametrize("term", ALL_TERMS, ids=lambda t: t.name)
def test_names_and_config_round_trip(term):
    cls = type(term)
    assert keras_kd.terms.get(cls.__name__) is cls
    alias = [k for k, v in keras_kd.terms.ALIASES.items() if v is cls]
    assert alias and keras_kd.terms.get(alias[0]) is cls
    config = keras_kd.terms.serialize(term)
    again = keras_kd.terms.deserialize(config)
    assert type(again) is cls
    assert again.get_config() == term.get_config()
    assert keras_kd.terms.get(config).get_config() == term.get_config()


def test_get_refuses_unknown_names():
    with pytest.raises(ValueError, match="Known names"):
        keras_kd.terms.get("crd_v2")
    with pytest.raises(TypeError, match="identifier"):
        keras_kd.terms.get(3)


@pytest.mark.parametrize("make,match", [
    (lambda: keras_kd.terms.RKD("a", "b", angle_weight=-1), "angle_weight"),
    (lambda: keras_kd.terms.PKT("", "b"), "teacher_layer"),
    (lambda: keras_kd.terms.SimilarityPreserving("a", "b", mode="torch"),
     "mode"),
    (lambda: keras_kd.terms.CorrelationCongruence("a", "b", order=-1),
     "order"),
    (lambda: keras_kd.terms.FSP([("a", "b")]), "two layers"),
    (lambda: keras_kd.terms.VID("a", "b", initial_variance=0),
     "initial_variance"),
    (lambda: keras_kd.terms.DKD(temperature=0), "temperature"),
    (lambda: keras_kd.terms.DIST(beta=-1), "beta"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_every_method_trains_in_one_distiller(data):
    x, y = data
    keras.utils.set_random_seed(0)
    teacher, student = make_cnn(8, "teacher"), make_cnn(8, "student")
    from keras_kd.terms.srd import teacher_head

    terms = [keras_kd.terms.deserialize(keras_kd.terms.serialize(t))
             for t in ALL_TERMS]
    terms.append(keras_kd.terms.SRD("conv2", "conv2",
                                    teacher_head(teacher, "conv2")))
    distiller = keras_kd.Distiller(teacher, student, terms=terms)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), alpha=0.5)
    labels = {"y": y, "index": np.arange(len(x))}  # for CRD
    history = distiller.fit(x, labels, batch_size=16, epochs=2, verbose=0)
    for term in terms:
        values = history.history[f"{term.name}_loss"]
        assert all(np.isfinite(values)), term.name
    # VID's regressor trained, outside the student.
    vid = next(t for t in terms if isinstance(t, keras_kd.terms.VID))
    assert vid.regressor is not None
    assert student.count_params() == make_cnn(8, "other").count_params()

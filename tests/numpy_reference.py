"""Independent NumPy implementations of the losses, for golden values."""

import numpy as np


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def soft_target_kd(teacher_logits, student_logits, temperature):
    """Batch mean of T² · Σ p_t (log p_t − log p_s)."""
    t = np.asarray(teacher_logits, np.float64) / temperature
    s = np.asarray(student_logits, np.float64) / temperature
    log_pt, log_ps = log_softmax(t), log_softmax(s)
    return float(
        np.mean(np.sum(np.exp(log_pt) * (log_pt - log_ps), -1))
        * temperature**2
    )


def area_resize_1d_weights(n_in, n_out):
    """Matrix (n_out, n_in) of overlap fractions: exact area averaging."""
    weights = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for i in range(n_out):
        start, end = i * scale, (i + 1) * scale
        for j in range(n_in):
            overlap = max(0.0, min(end, j + 1) - max(start, j))
            weights[i, j] = overlap / scale
    return weights


def attention_transfer(teacher_map, student_map, p=2.0, mode="code"):
    """Zagoruyko & Komodakis AT with area averaging to the smaller size."""

    def attention(a):
        a = np.mean(np.abs(np.asarray(a, np.float64)) ** p, axis=-1)
        return a.reshape(a.shape[0], a.shape[1], -1)  # (B, H, W) or (B, T, 1)

    at, as_ = attention(teacher_map), attention(student_map)
    h = min(at.shape[1], as_.shape[1])
    w = min(at.shape[2], as_.shape[2])

    def resize(a):
        rows = area_resize_1d_weights(a.shape[1], h)
        cols = area_resize_1d_weights(a.shape[2], w)
        return np.einsum("ih,bhw,jw->bij", rows, a, cols)

    qt = resize(at).reshape(at.shape[0], -1)
    qs = resize(as_).reshape(as_.shape[0], -1)
    qt = qt / np.maximum(np.linalg.norm(qt, axis=-1, keepdims=True), 1e-12)
    qs = qs / np.maximum(np.linalg.norm(qs, axis=-1, keepdims=True), 1e-12)
    if mode == "code":
        return float(np.mean((qs - qt) ** 2))
    return float(np.mean(np.linalg.norm(qs - qt, axis=-1)))


def attention_map_kd(teacher_probs, student_probs, mode="kl",
                     query_mask=None):
    """MiniLM KL / TinyBERT MSE of attention probabilities, head-grouped.

    Groups are formed with explicit loops over student heads; `query_mask`
    `(B, Tq)` restricts the average to valid queries.
    """
    t = np.asarray(teacher_probs, np.float64)
    s = np.asarray(student_probs, np.float64)
    ht, hs = t.shape[1], s.shape[1]
    if ht != hs:
        if ht % hs == 0:
            k = ht // hs
            t = np.stack([t[:, j * k:(j + 1) * k].mean(axis=1)
                          for j in range(hs)], axis=1)
        else:
            t = t.mean(axis=1, keepdims=True)
            s = s.mean(axis=1, keepdims=True)
    if mode == "kl":
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(t > 0, t * (np.log(t) - np.log(np.maximum(
                s, 1e-12))), 0.0)
        rows = terms.sum(axis=-1)
    else:
        rows = ((t - s) ** 2).mean(axis=-1)
    rows = rows.mean(axis=1)  # (B, Tq)
    if query_mask is None:
        return float(rows.mean())
    mask = np.asarray(query_mask, np.float64)
    return float((rows * mask).sum() / mask.sum())


def area_pool(features, size):
    """Exact area resize of (B, H, W, C) or (B, T, C) features to `size`."""
    f = np.asarray(features, np.float64)
    if f.ndim == 3:
        rows = area_resize_1d_weights(f.shape[1], size[0])
        return np.einsum("it,btc->bic", rows, f)
    rows = area_resize_1d_weights(f.shape[1], size[0])
    cols = area_resize_1d_weights(f.shape[2], size[1])
    return np.einsum("ih,bhwc,jw->bijc", rows, f, cols)


def ensemble_kd(teacher_logits_list, weights, student_logits, temperature):
    """T² · KL(Σ w_i softmax(t_i/T) ‖ softmax(s/T)), batch mean."""
    p = sum(w * np.exp(log_softmax(np.asarray(t, np.float64) / temperature))
            for t, w in zip(teacher_logits_list, weights))
    log_ps = log_softmax(np.asarray(student_logits, np.float64) / temperature)
    return float(np.mean(np.sum(p * (np.log(p) - log_ps), -1))
                 * temperature**2)


def _softened(logits, temperature):
    z = np.asarray(logits, np.float64) / temperature
    return np.exp(log_softmax(z))


def _kl_rows(a, b):
    """Σ a log(a / b) per row; 0 · log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(a > 0, a * (np.log(a) - np.log(b)), 0.0)
    return terms.sum(-1)


def divergence(kind, teacher_logits, student_logits, temperature=1.0,
               coefficient=None, mask=None):
    """Mean over (valid) rows of T² · D(p, q) for the LM divergences:
    "forward" KL(p‖q), "reverse" KL(q‖p), "jsd" with β, "skew" KL(p‖αp +
    (1−α)q), "skew_reverse" KL(q‖αq + (1−α)p)."""
    p = _softened(teacher_logits, temperature)
    q = _softened(student_logits, temperature)
    c = coefficient
    if kind == "forward":
        rows = _kl_rows(p, q)
    elif kind == "reverse":
        rows = _kl_rows(q, p)
    elif kind == "jsd":
        m = c * p + (1 - c) * q
        rows = c * _kl_rows(p, m) + (1 - c) * _kl_rows(q, m)
    elif kind == "skew":
        rows = _kl_rows(p, c * p + (1 - c) * q)
    else:
        rows = _kl_rows(q, c * q + (1 - c) * p)
    rows = rows * temperature**2
    if mask is None:
        return float(rows.mean())
    return float(rows[mask].sum() / mask.sum())

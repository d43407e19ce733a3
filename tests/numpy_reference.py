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

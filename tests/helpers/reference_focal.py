"""An independent float64 NumPy reading of docs/method.md sections 1-3, written from the spec's text with
explicit sums (no shared code with focal_pl), to check the library's batched torch version."""

from __future__ import annotations

import numpy as np

EPS = 1e-8


def unit_rows(features_chw: np.ndarray) -> np.ndarray:
    c = features_chw.shape[0]
    f = features_chw.reshape(c, -1).T.astype(np.float64)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def centers(f: np.ndarray, w: np.ndarray, m: float) -> np.ndarray:
    out = np.zeros((2, f.shape[1]))
    for k in range(2):
        wm = w[k] ** m
        out[k] = (wm[:, None] * f).sum(0) / max(wm.sum(), EPS)
    return out


def objective(f: np.ndarray, w: np.ndarray, c: np.ndarray, m: float) -> float:
    return float(sum((w[k] ** m * ((f - c[k]) ** 2).sum(1)).sum() for k in range(2)))


def memberships(f: np.ndarray, c: np.ndarray, m: float) -> np.ndarray:
    d = np.stack([np.linalg.norm(f - c[k], axis=1) + EPS for k in range(2)])
    w = np.zeros_like(d)
    for k in range(2):
        w[k] = 1.0 / sum((d[k] / d[j]) ** (2.0 / (m - 1.0)) for j in range(2))
    return w


def soft_coefficients(f, y, m=2.0, max_iter=1, tol=1e-4):
    w = np.stack([1.0 - y, y]).astype(np.float64)
    previous = None
    for _ in range(max_iter):
        c = centers(f, w, m)
        j = objective(f, w, c, m)
        if previous is not None and abs(previous - j) <= tol * abs(previous):
            break
        w = memberships(f, c, m)
        previous = j
    return w, centers(f, w, m)


def scl_image(f, y, tau=0.1, m=2.0, soft=True, rule="within_class", max_iter=1, tol=1e-4):
    """L_0 + L_1 of one image, pixel by pixel."""
    if soft:
        w, _ = soft_coefficients(f, y, m, max_iter, tol)
        if rule == "within_class":
            w = w * np.stack([1.0 - y, y])
    else:
        w = np.stack([1.0 - y, y]).astype(np.float64)
    c = centers(f, w, m)
    total = 0.0
    for k in range(2):
        other = c[1 - k] / np.linalg.norm(c[1 - k])
        num = den = 0.0
        for i in range(f.shape[0]):
            if w[k, i] == 0:
                continue
            # expectation of f_i . f_j over the positives j weighted by w_kj
            s_pos = sum(w[k, j] * f[i] @ f[j] for j in range(f.shape[0])) / w[k].sum()
            s_neg = f[i] @ other
            l_i = -np.log(np.exp(s_pos / tau) / (np.exp(s_pos / tau) + np.exp(s_neg / tau)))
            num += w[k, i] * l_i
            den += w[k, i]
        total += num / den
    return total


def hard_label_loss(f, y, tau=0.1):
    """The hard-label loss written directly: class sets, plain means, no coefficients at all."""
    total = 0.0
    for k in (0, 1):
        same = f[y == k]
        other = f[y != k].mean(0)
        other = other / np.linalg.norm(other)
        terms = []
        for q in same:
            s_pos = np.mean(same @ q)
            s_neg = q @ other
            terms.append(np.log1p(np.exp((s_neg - s_pos) / tau)))
        total += np.mean(terms)
    return total


def info_nce(p, q, tau=0.1):
    """Official FOCAL InfoNCE on already-sampled unit rows."""
    losses = []
    for i in range(p.shape[0]):
        pos = np.mean([p[i] @ p[j] for j in range(p.shape[0]) if j != i])
        logits = np.concatenate([[pos], q @ p[i]]) / tau
        losses.append(-logits[0] + np.log(np.exp(logits).sum()))
    return float(np.mean(losses))

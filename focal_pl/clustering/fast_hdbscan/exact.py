"""Exact values: scikit-learn's euclidean distances, bit for bit, and the square keys the trees compare.

scikit-learn computes a distance as ``sqrt(sum((x_k - y_k)^2))`` in float64, the features added one
after the other (its Cython loop). ``exact_distances`` does the same, in the same order, so its
values equal scikit-learn's bit for bit (tested), and so do the core distances and every weight of
the spanning trees built from them. Adding 256 features in order is slow, so it is done only for the
few pairs whose value decides something; the rest is decided by bounds (``bounds``). The trees work
on squared distances as *keys* (``_square_keys``: per square, the least double with the same
correctly rounded root, so that keys order and tie exactly as scikit-learn's rooted values) and root
only their N-1 weights."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

EXACT_BYTES = 32 << 20  # the most an exact sum holds at once (pairs x features x float64)
_SMALL = 64  # below this many pairs, exact distances go one pair per row (no per-feature loop)


def exact_distances(rows: np.ndarray | Tensor, first, second) -> np.ndarray | Tensor:
    """scikit-learn's euclidean distances between ``rows[first]`` and ``rows[second]``, float64, bit
    for bit: the differences in float64, squared, added one feature after the other, rooted (its
    Cython loop's order). NumPy rows give a NumPy array, torch rows a tensor on their device."""
    if isinstance(rows, Tensor):
        first = torch.as_tensor(first, device=rows.device)
        return _sqrt64(_exact_torch(rows, first, torch.as_tensor(second, device=rows.device)))
    rows = np.asarray(rows)
    return np.sqrt(_exact_numpy(rows, np.ascontiguousarray(rows.T), np.asarray(first), np.asarray(second)))


def _exact_numpy(x: np.ndarray, xt: np.ndarray, first: np.ndarray, second: np.ndarray,
                 chunk: int = 2048) -> np.ndarray:
    """Squared distances as scikit-learn sums them (not rooted), on the host. ``xt`` is ``x``
    transposed (C x N): each feature's differences then lie in one row, and the features are added
    row after row (in order for every pair, many pairs per vector operation)."""
    m = len(first)
    out = np.empty(m)
    if m < _SMALL:
        d = np.subtract(x[first], x[second], dtype=np.float64)
        np.multiply(d, d, out=d)
        np.add.accumulate(d, axis=1, out=d)
        out[:] = d[:, -1] if m else 0.0
        return out
    for start in range(0, m, chunk):
        stop = min(m, start + chunk)
        d = np.subtract(np.take(xt, first[start:stop], axis=1), np.take(xt, second[start:stop], axis=1),
                        dtype=np.float64)
        np.multiply(d, d, out=d)
        total = out[start:stop]
        total[:] = d[0]
        for feature in d[1:]:
            total += feature
    return out


def _exact_torch(x: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """``_exact_numpy`` in torch (any device): one vector add per feature, in order."""
    out = torch.empty(first.numel(), dtype=torch.float64, device=x.device)
    chunk = max(1, EXACT_BYTES // (8 * max(1, x.shape[1])))
    for start in range(0, first.numel(), chunk):
        d = x[first[start : start + chunk]].double() - x[second[start : start + chunk]].double()
        d.mul_(d)
        total = d[:, 0].clone()
        for k in range(1, d.shape[1]):
            total += d[:, k]
        out[start : start + chunk] = total
    return out


def _sqrt64(values: Tensor) -> Tensor:
    """Correctly rounded float64 square roots, as scikit-learn's C ``sqrt``: torch's vectorised CPU
    ``sqrt`` can be an ulp off (CUDA's double ``sqrt`` is IEEE), so the host takes NumPy's."""
    if values.device.type == "cpu":
        return torch.from_numpy(np.sqrt(values.numpy()))
    return values.sqrt()


def _square_keys(squares):
    """Per squared distance, the least double with the same correctly rounded square root: compared
    as keys, squared values order and tie exactly as scikit-learn's rooted distances (two squares one
    ulp apart can share a root), so the trees work on squares and root only their N-1 weights."""
    if isinstance(squares, Tensor):
        root, lib, sqrt = _sqrt64(squares), torch, _sqrt64
    elif len(squares) <= 8:  # a refinement's few values: Python's IEEE sqrt and nextafter
        return np.array([_square_key(float(v)) for v in squares])
    else:
        root, lib, sqrt = np.sqrt(squares), np, np.sqrt
    key = root * root  # within an ulp or two of the least square with this root
    up, down = lib.full_like(key, math.inf), lib.full_like(key, -math.inf)
    for _ in range(4):  # up to a square with this root ...
        low = sqrt(key) < root
        if not bool(low.any()):
            break
        key = lib.where(low, lib.nextafter(key, up), key)
    for _ in range(4):  # ... then down while the root holds
        lower = lib.nextafter(key, down)
        same = (lower >= 0) & (sqrt(lib.maximum(lower, 0 * lower)) == root)
        if not bool(same.any()):
            break
        key = lib.where(same, lower, key)
    return key


def _square_key(square: float) -> float:
    root = math.sqrt(square)
    key = root * root
    while math.sqrt(key) < root:
        key = math.nextafter(key, math.inf)
    while key > 0 and math.sqrt(math.nextafter(key, -math.inf)) == root:
        key = math.nextafter(key, -math.inf)
    return key

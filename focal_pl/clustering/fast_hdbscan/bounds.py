"""Rigorous float32 bounds of every squared distance, from one matrix product.

One matrix product in float32 on centred rows (``sigma_i + sigma_j - 2 y_i.y_j``) gives every squared
distance within a rigorous bound: ``|fl(x.y) - x.y| <= gamma_C sum|x_k y_k|`` for any summation order
(``gamma_C = C u / (1 - C u)``, ``u = 2^-24``), plus the roundings of the norms, the sums, the
centring and underflow. ``_Bounds`` shifts the product below every squared distance (``lower_ij``)
and keeps per point ``h_i`` with ``D_ij^2 <= lower_ij + h_i + h_j``, with a margin for the rounding
of the tests themselves. Centring on the mean shrinks the norms, hence the bound. A float32 product
must then really be float32: ``torch.set_float32_matmul_precision`` is held at "highest" around it
(no TF32, no bfloat16). Rows whose scale float32 cannot hold use float64.

Two shapes: ``_dense_lower_bounds``, all N x N pairs on the host (one BLAS ``syrk``, its triangle
mirrored, in a buffer kept between calls), for Prim; ``_lower_rows``, a chunk of rows against all
points in torch on any device, for Boruvka."""

from __future__ import annotations

import contextlib
import functools
import math
import threading

import numpy as np
import torch
from torch import Tensor

from focal_pl.clustering.fast_hdbscan.arrays import _mirror_numpy

WORKSPACE_BYTES = 256 << 20  # Prim's N x N buffer is kept between calls up to this size (N = 8192)
_WORKSPACE: dict = {}
_WORKSPACE_LOCK = threading.Lock()


class _Bounds:
    """Centred low-precision rows for one matrix product, with the bound of its squared distances.

    ``sigma_i + sigma_j - 2 y_i.y_j`` (computed in ``dtype``) lies below ``D_ij^2`` by at least
    ``b_ij`` and at most ``3 b_ij``, ``b_ij = beta (S_i + S_j) + eta`` (``S = |y|^2``; ``eta`` covers
    underflow). With ``h = 5 beta S + 2.5 eta``, ``D_ij^2 <= lower_ij + h_i + h_j - b_ij``: one ``b``
    of margin for the rounding of the tests themselves (float32 comparisons, sums)."""

    def __init__(self, x: np.ndarray | Tensor):
        c = x.shape[1]
        for dtype in ("float32", "float64"):
            info = np.finfo(dtype)
            u = float(info.eps) / 2
            beta = c * u / (1 - c * u) + 32 * u
            eta = (c + 32) * float(info.tiny)
            if isinstance(x, Tensor):
                x64 = x.double()
                self.y = (x64 - x64.mean(0)).to(getattr(torch, dtype))
                norms = self.y.double().square().sum(1)
                largest = float(norms.max()) if len(norms) else 0.0
            else:
                centred = np.subtract(x, x.mean(0, dtype=np.float64), dtype=np.float64)
                self.y = centred.astype(dtype)
                norms = np.einsum("ij,ij->i", self.y, self.y, dtype=np.float64)
                largest = float(norms.max()) if len(norms) else 0.0
            # float32 unless its range cannot hold the squared norms (overflow, or all underflow)
            if dtype == "float64" or (math.isfinite(largest) and largest < 1e30 and not 0 < largest < 1e-30):
                break
        if not math.isfinite(largest):  # NaN or inf features (or squares beyond float64)
            raise ValueError("HDBSCAN needs finite features (and squared distances within float64)")
        self.sigma = (norms * (1 - 2 * beta) - eta).astype(dtype) if not isinstance(x, Tensor) else \
            (norms * (1 - 2 * beta) - eta).to(self.y.dtype)
        self.h = 5 * beta * norms + 2.5 * eta
        self.h_max = float(self.h.max()) if len(self.h) else 0.0


@contextlib.contextmanager
def _ieee_matmul():
    """float32 matrix products in float32 (no TF32, no bfloat16) for the bounds to hold."""
    before = torch.get_float32_matmul_precision()
    if before != "highest":
        torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        if before != "highest":
            torch.set_float32_matmul_precision(before)


def _thresholds(core2, bounds: _Bounds):
    """Per point: pairs whose lower bound is at most this are certainly within the point's core
    distance (``lower + h_i + h_j <= core_i^2``), whatever the other end."""
    return core2 - bounds.h - bounds.h_max


def _round_down(values: Tensor, dtype: torch.dtype) -> Tensor:
    """float64 -> ``dtype``, never above the float64 value."""
    low = values.to(dtype)
    return torch.where(low.double() > values, torch.nextafter(low, torch.full_like(low, -math.inf)), low)


def _round_up(values: Tensor, dtype: torch.dtype) -> Tensor:
    high = values.to(dtype)
    return torch.where(high.double() < values, torch.nextafter(high, torch.full_like(high, math.inf)), high)


def _down(values: np.ndarray, dtype) -> np.ndarray:
    low = values.astype(dtype)
    return np.where(low > values, np.nextafter(low, -np.inf), low)


def _up(values: np.ndarray, dtype) -> np.ndarray:
    high = values.astype(dtype)
    return np.where(high < values, np.nextafter(high, np.inf), high)


def _lower_rows(bounds: _Bounds, start: int, stop: int) -> Tensor:
    """The lower bounds of the squared distances, rows start..stop against all points (the bounds'
    dtype)."""
    y, sigma = bounds.y, bounds.sigma
    with _ieee_matmul():
        lower = torch.addmm(sigma[start:stop, None], y[start:stop], y.T, alpha=-2.0)
    return lower.add_(sigma[None, :])


def _dense_lower_bounds(bounds: _Bounds) -> np.ndarray:
    """``sigma_i + sigma_j - 2 y_i.y_j`` for all pairs, N x N (C order), exactly symmetric: one
    symmetric rank-k update (BLAS ``syrk``: half the products of a full matrix product) on the outer
    sum, its triangle then mirrored. BLAS runs on one thread: its idle workers spin for a while after
    a call, taking a core from the NumPy work that follows (which has threads of its own)."""
    from scipy.linalg import blas

    y, sigma = bounds.y, bounds.sigma
    n = len(y)
    syrk = blas.ssyrk if y.dtype == np.float32 else blas.dsyrk
    lower = _workspace(n, y.dtype)
    np.add(sigma[:, None], sigma[None, :], out=lower)
    # Fortran's lower triangle is the C-order upper one of the transpose (the same symmetric matrix)
    with _one_blas_thread():
        filled = syrk(-2.0, np.asfortranarray(y), beta=1.0, c=lower, overwrite_c=1, lower=1)
    if not np.shares_memory(filled, lower):
        raise RuntimeError("BLAS syrk did not update the matrix in place")
    matrix = lower.T
    _mirror_numpy(matrix[None])
    return matrix


def _workspace(n: int, dtype) -> np.ndarray:
    """An N x N Fortran-order buffer: the one the last call kept, if its shape, else a new one (its
    pages are then faulted in on first write, a few ms for 64 MiB)."""
    with _WORKSPACE_LOCK:
        kept = _WORKSPACE.pop((n, np.dtype(dtype)), None)
    return kept if kept is not None else np.empty((n, n), dtype=dtype, order="F")


def _keep_workspace(matrix: np.ndarray) -> None:
    """Keep the N x N buffer behind ``matrix`` (its C-order transpose) for the next call, if at most
    ``WORKSPACE_BYTES``; one buffer at a time (a concurrent call gets its own)."""
    buffer = matrix.T
    if buffer.nbytes <= WORKSPACE_BYTES and buffer.flags.f_contiguous:
        with _WORKSPACE_LOCK:
            _WORKSPACE.clear()
            _WORKSPACE[(len(buffer), buffer.dtype)] = buffer


@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController  # scikit-learn's own dependency

    return ThreadpoolController()


@contextlib.contextmanager
def _one_blas_thread():
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield

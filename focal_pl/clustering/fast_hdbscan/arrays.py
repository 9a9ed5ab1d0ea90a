"""Array plumbing shared by the trees: rows to the host, the CPU's threads over spans of rows, the
nonzero entries of a sparse mask, and a triangle mirrored onto the other (NumPy or torch)."""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor


def _host_rows(rows: np.ndarray | Tensor) -> np.ndarray:
    x = rows.detach().cpu().numpy() if isinstance(rows, Tensor) else np.asarray(rows)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return np.ascontiguousarray(x)


def _spans(n: int, step: int) -> list[tuple[int, int]]:
    """(start, stop) ranges covering 0..n: a few per thread, whole multiples of ``step``."""
    parts = max(1, min(4 * _workers(), -(-n // step)))
    size = -(-(-(-n // parts)) // step) * step
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def _workers() -> int:
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


def _threads(fn, items: list):
    """``[fn(item) for item in items]`` on the CPU's threads (NumPy releases the GIL in its loops, sorts
    and copies); a pool per call, so that nothing outlives a fork."""
    if _workers() == 1 or len(items) < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(_workers()) as pool:
        return list(pool.map(fn, items))


def _nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a sparse 2-d bool array, by 8-byte words first."""
    cols = mask.shape[1]
    if cols % 8 or not mask.flags.c_contiguous:
        return np.nonzero(mask)
    words = np.flatnonzero(mask.view(np.uint64))
    where, offset = np.nonzero(mask.reshape(-1, 8)[words])
    flat = words[where] * 8 + offset
    return flat // cols, flat % cols


def _mirror(matrix: Tensor) -> Tensor:
    """Copy the upper triangle of B x N x N ``matrix`` onto the lower one, in place, by strips of
    columns: on a CPU narrow ones through NumPy (a transposed copy that stays in cache, and no
    thread barrier per strip), on a GPU wide ones."""
    if matrix.device.type == "cpu" and matrix.dtype in (torch.float64, torch.float32):
        _mirror_numpy(matrix.detach().numpy())
        return matrix
    return _mirror_torch(matrix)


def _mirror_numpy(matrix: np.ndarray | Tensor, width: int = 16):
    """``_mirror`` of a B x N x N NumPy array (or CPU tensor), in place, its strips on the CPU's
    threads (each writes its own columns below the diagonal, reads only above it)."""
    batch = matrix.detach().numpy() if isinstance(matrix, Tensor) else matrix
    n = batch.shape[-1]

    def strips(span: tuple[int, int]) -> None:
        for m in batch:
            for start in range(span[0], span[1], width):
                stop = min(n, start + width)
                square = m[start:stop, start:stop]
                upper = _upper_indices(stop - start)
                square.T[upper] = square[upper]
                if stop < n:
                    m[stop:, start:stop] = m[start:stop, stop:].T

    # strips near the top copy the most: interleave them over the threads
    spans = _spans(n, width)
    _threads(strips, spans[::2] + spans[1::2])
    return matrix


def _mirror_torch(matrix: Tensor, width: int = 2048) -> Tensor:
    n = matrix.shape[-1]
    for start in range(0, n, width):
        stop = min(n, start + width)
        square = matrix[:, start:stop, start:stop]
        square.copy_(torch.triu(square) + torch.triu(square, 1).transpose(1, 2))
        if stop < n:
            matrix[:, stop:, start:stop] = matrix[:, start:stop, stop:].transpose(1, 2)
    return matrix


@functools.lru_cache(maxsize=8)
def _upper_indices(width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(width, 1)

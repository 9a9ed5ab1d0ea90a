"""The spanning-tree choices of the exact HDBSCAN, in one place: ``algorithms`` (imported at startup)
and ``fast_hdbscan`` (imported lazily, it pulls scikit-learn's private tree code) both read them from
here, a module that imports nothing heavy."""

from __future__ import annotations

from typing import Literal

MstMethod = Literal["auto", "prim", "boruvka"]
MST_METHODS: tuple[str, ...] = ("auto", "prim", "boruvka")

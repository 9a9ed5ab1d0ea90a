"""The masker contract: one image's features -> (forged mask, per-pixel score), both on the host."""

from __future__ import annotations

from torch import Tensor


class Masker:
    """Turns features into masks. ``Clusterer`` (FOCAL: clustering, nothing trained) and the
    baseline's ``ThresholdMasker`` (a trained classifier's logits) both are one, so validation, test
    and predict take either.

    ``__call__(features C x h x w, splits) -> (mask bool h x w, score float32 h x w in [0, 1])``, both
    on the CPU, whatever device the features are on. ``splits``: the channels of each fused member.
    ``cluster_batch`` does the same for ``B x C x h x w`` in one call (subclasses batch the work).
    """

    def __call__(self, features: Tensor, splits: list[int] | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def cluster_batch(self, features: Tensor, splits: list[int] | None = None) -> list[tuple[Tensor, Tensor]]:
        """One (mask, score) per map of ``features`` B x C x h x w."""
        return [self(f, splits) for f in features]

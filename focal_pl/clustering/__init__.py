"""Per-image clustering behind one function: features -> forged mask (+ score). Knows no training."""

from focal_pl.clustering.algorithms import ALGORITHMS, cluster_labels, resolve_min_cluster_size
from focal_pl.clustering.core import Clusterer, cluster_mask, feature_rows, resize_mask
from focal_pl.clustering.labelling import forged_from_labels, pristine_distance_score
from focal_pl.clustering.masker import Masker

__all__ = [
    "ALGORITHMS",
    "Clusterer",
    "Masker",
    "cluster_labels",
    "cluster_mask",
    "feature_rows",
    "forged_from_labels",
    "pristine_distance_score",
    "resize_mask",
    "resolve_min_cluster_size",
]

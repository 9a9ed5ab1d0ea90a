"""Per-image clustering behind one function: features -> forged mask (+ score). Knows no training."""

from focal_pl.clustering.algorithms import (
    ALGORITHMS,
    BACKENDS,
    SELECTION_METHODS,
    check_min_cluster_size,
    cluster_labels,
    resolve_min_cluster_size,
)
from focal_pl.clustering.core import (
    Clusterer,
    cluster_mask,
    feature_rows,
    pool_to_grid,
    pooled_size,
    unit_rows,
)
from focal_pl.clustering.labelling import forged_from_labels, membership_score, pristine_distance_score
from focal_pl.clustering.masker import Masker
from focal_pl.clustering.methods import MST_METHODS
from focal_pl.clustering.threshold import ThresholdMasker

__all__ = [
    "ALGORITHMS",
    "BACKENDS",
    "MST_METHODS",
    "SELECTION_METHODS",
    "ThresholdMasker",
    "Clusterer",
    "Masker",
    "check_min_cluster_size",
    "cluster_labels",
    "cluster_mask",
    "feature_rows",
    "forged_from_labels",
    "membership_score",
    "pool_to_grid",
    "pooled_size",
    "pristine_distance_score",
    "resolve_min_cluster_size",
    "unit_rows",
]

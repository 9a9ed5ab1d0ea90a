"""Evaluation: the metrics, the one scoring path (``scoring.Scorer``) and the callbacks that write
what a run shows of it: ``ValidationRecord`` (metrics.json and validation pictures), ``TestReport``
(test sets), ``PredictionWriter`` (predict) and ``RunSummary`` (the lines at the end of a fit)."""

from focal_pl.evaluation.prediction import PredictionWriter
from focal_pl.evaluation.summary import RunSummary
from focal_pl.evaluation.testing import TestReport
from focal_pl.evaluation.validation import ValidationRecord

__all__ = ["PredictionWriter", "RunSummary", "TestReport", "ValidationRecord"]

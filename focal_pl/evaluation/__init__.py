"""Evaluation: one scoring path (``scoring.Scorer``) behind the three callbacks that run it:
``ClusterEvaluator`` (validation), ``TestReport`` (test sets) and ``PredictionWriter`` (predict);
``RunSummary`` prints a fit's summary, ``ValidationPictures`` draws validation images."""

from focal_pl.evaluation.prediction import PredictionWriter
from focal_pl.evaluation.summary import RunSummary
from focal_pl.evaluation.test_report import TestReport
from focal_pl.evaluation.validation import ClusterEvaluator

__all__ = ["ClusterEvaluator", "PredictionWriter", "RunSummary", "TestReport"]

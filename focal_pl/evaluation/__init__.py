"""Evaluation: one scoring path (``scoring.score_batch``) behind the three callbacks that run it:
``ClusterEvaluator`` (validation), ``TestReport`` (test sets) and ``PredictionWriter`` (predict)."""

from focal_pl.evaluation.prediction import PredictionWriter
from focal_pl.evaluation.test_report import TestReport
from focal_pl.evaluation.validation import ClusterEvaluator

__all__ = ["ClusterEvaluator", "PredictionWriter", "TestReport"]

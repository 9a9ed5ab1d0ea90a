"""The lines a person reads at the end of a fit: where the run is, its extractor, the untrained,
final and best validation, and the files it wrote (only those that exist)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from focal_pl.evaluation.validation import ValidationRecord


def parameters(count: int) -> str:
    """``88.39 M parameters`` / ``4,520 parameters``."""
    return f"{count / 1e6:.2f} M parameters" if count >= 1e6 else f"{count:,} parameters"


def shown(path: str | Path) -> str:
    """A path as a person types it: relative to the working folder when it lies under it."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd()))
    except ValueError:
        return str(resolved)


def run_summary(record: dict[str, Any], run: Path, checkpoints: Any, metrics_file: Path | None,
                skipped: int = 0) -> str:
    """The summary of a fit from its validation record (``ValidationRecord.record``)."""
    lines = [f"\nRun folder: {shown(run)}"]
    if record.get("extractor"):
        lines.append(f"extractor: {record['extractor']['class']}, {parameters(record['extractor']['parameters'])}")
    lines.append("validation (clustering, image resolution): macro F1 | forged F1 | IoU | images")
    for label, entry in (("untrained", record.get("untrained")), ("trained", record.get("final")),
                         ("best", record.get("best"))):
        if entry:
            lines.append(f"  {label:<9} {entry['f1']:.4f} | {entry['f1_forged']:.4f} | "
                         f"{entry['iou']:.4f} | {int(entry['images'])}  (step {entry['step']})")
    if record.get("final") is None:
        lines.append("  no validation ran: the run has no validation score")
    for label in ("best", "last"):
        ckpt = getattr(checkpoints, f"{label}_model_path", "")
        if ckpt and Path(ckpt).is_file():
            lines.append(f"checkpoint ({label}): {shown(ckpt)}")
    if metrics_file is not None and metrics_file.is_file():
        lines.append(f"metrics: {shown(metrics_file)}")
    if (run / "val_images").is_dir():
        lines.append(f"pictures: {shown(run / 'val_images')}")
    if skipped:
        lines.append(f"skipped {skipped} unreadable item(s) on this rank; the warnings above name them")
    return "\n".join(lines)


def validate_summary(entry: dict[str, Any], checkpoint: str | None, metrics_file: Path | None) -> str:
    """What ``focal-pl validate`` prints: which model (its checkpoint and step) scored what."""
    model = f"{checkpoint} (step {entry['step']})" if checkpoint else f"the model at step {entry['step']}"
    lines = [f"\nvalidation of {model}: macro F1 | forged F1 | IoU | images",
             f"  {entry['f1']:.4f} | {entry['f1_forged']:.4f} | {entry['iou']:.4f} | {int(entry['images'])}"]
    if metrics_file is not None and metrics_file.is_file():
        lines.append(f"metrics: {metrics_file}")
    return "\n".join(lines)


def record_of(trainer: L.Trainer) -> ValidationRecord | None:
    """The trainer's ``ValidationRecord``, if it has one."""
    return next((c for c in trainer.callbacks if isinstance(c, ValidationRecord)), None)


class RunSummary(Callback):
    """Prints ``run_summary`` when a fit ends (not when it is stopped: the stop says where it is),
    and ``validate_summary`` when a validate command ends."""

    def __init__(self) -> None:
        self._failed = False

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._failed = True

    @rank_zero_only
    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        evaluator = record_of(trainer)
        if stage != "validate" or self._failed or evaluator is None or not evaluator.record.get("final"):
            return
        print(validate_summary(evaluator.record["final"], trainer.ckpt_path, evaluator.metrics_path()))

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        evaluator = record_of(trainer)
        if evaluator is None:
            return
        print(run_summary(evaluator.record, evaluator.run_dir, trainer.checkpoint_callback, evaluator.metrics_path(),
                          getattr(pl_module, "skipped_items", 0)))

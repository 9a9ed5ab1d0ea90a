"""How a Lightning command ends when it cannot finish: each kind of failure, its exit code and its
one line (docs/runs.md): 1 failed while running, 130 / 143 stopped by Ctrl-C / SIGTERM."""

from __future__ import annotations

import errno
import os
from pathlib import Path

DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM)


def with_notes(error: BaseException, text: str) -> str:
    """An error's line with its notes (``add_note``: what the checkpoints folder holds) joined on."""
    return "; ".join([text.rstrip("."), *getattr(error, "__notes__", [])])


def disk_error(error: OSError) -> str:
    """``could not write FILE: REASON; N MiB free on FOLDER``."""
    from focal_pl.files.checkpoint import CheckpointWriteError, free_space

    if isinstance(error, CheckpointWriteError):
        return error.strerror
    reason = os.strerror(error.errno) if error.errno else str(error)
    if not error.filename:
        return f"a write failed: {reason}"
    folder = Path(str(error.filename)).parent
    return f"could not write {error.filename}: {reason}; {free_space(folder)} on {folder}"


def failure_line(error: BaseException) -> tuple[int, str] | None:
    """(exit code, the line to print, empty when already said) for a failure the command reports in
    one line; None for an error that is a bug (its traceback is the report)."""
    from focal_pl.evaluation.prediction import NothingPredicted
    from focal_pl.files.checkpoint import CheckpointError
    from focal_pl.training.distributed import failure_reason, is_distributed_failure
    from focal_pl.training.stopping import FitStopped

    if isinstance(error, FitStopped):  # at a step boundary, last.ckpt saved there
        return error.exit_code, f"{error}. Resume: the same command with --ckpt_path last"
    if isinstance(error, CheckpointError):
        return 1, with_notes(error, str(error))
    if isinstance(error, FloatingPointError):  # a non-finite loss: the step and the batch's images
        return 1, with_notes(error, str(error))
    if isinstance(error, NothingPredicted):
        return 1, str(error)
    if isinstance(error, OSError) and error.errno in DISK_ERRORS:  # a full, read-only or failing disk
        return 1, with_notes(error, disk_error(error))
    if isinstance(error, KeyboardInterrupt):
        return 130, ""
    if isinstance(error, RuntimeError) and is_distributed_failure(error):  # a DDP peer was lost
        return 1, with_notes(error, f"a collective between the DDP processes failed ({failure_reason(error)})")
    if isinstance(error, SystemExit):
        # Lightning ends a command on SIGTERM by a SystemExit with no code, and on Ctrl-C by exit 1
        # raised while handling the KeyboardInterrupt: a scheduler must not read either as success
        if type(error).__name__ == "SIGTERMException":
            return 143, ""
        if isinstance(error.__context__, KeyboardInterrupt):
            return 130, ""
    return None

"""The ``focal-pl`` command: the dispatcher. Heavy imports (torch, Lightning) happen inside the
commands, so that ``focal-pl --help`` and ``focal-pl configs`` answer at once.

Subcommands live beside it: ``lightning`` (fit / validate / test / predict over LightningCLI),
``experiments`` (sweep, ablate), ``data`` (check, shard).
"""

from __future__ import annotations

import errno
import os
import sys

from focal_pl import __version__
from focal_pl.cli.lightning import LIGHTNING_COMMANDS, command_help, resolve_config_args, run_lightning
from focal_pl.shipped import catalogue, configs_dir, find_shipped, resolve_config, shipped_configs

USAGE = f"""usage: focal-pl COMMAND [--config FILE] [--key.subkey VALUE ...]

FOCAL image-forgery detection and localization on PyTorch Lightning (focal-pl {__version__}).

Lightning commands (every option of the config can also be set on the command line):
  fit        train an extractor; validates by clustering every validation image
  validate   score a model on the validation split
  test       score a model on the test sets (one report per set)
  predict    masks for the images of the predict split

Experiments:
  sweep FILE [--count N]     run a W&B sweep file locally, offline, and tabulate the runs
  ablate FILE                run an ablation set (configs/ablation/*.yaml) and tabulate it

Other commands:
  export RUN_OR_CKPT --out NAME.pt   a release file (weights-only, with a model card) for test / predict
                             --weights, focal_pl.load(...); --official FILE converts the official FOCAL weights
  runs [FOLDER]              the runs under runs/ (or FOLDER): config, version, state, steps, best score, commit, date
  env                        the code version, package versions and machine a run here records in run.json
  data check SOURCE [ROOT]   decode every item of a data set (or verify a shard folder) and list its problems
  data shard SOURCE [ROOT] --out DIR   convert data sets to streaming shards (resumable)
  configs    list the shipped configs and sweeps, with what each is for

Examples:
  focal-pl fit --config demo.yaml                 # CPU demo on synthetic forgeries
  focal-pl fit --config vit.yaml --print_config   # the paper's ViT setting, resolved
  focal-pl fit --config vit.yaml --trainer.devices 4 --model.init_args.loss.init_args.temperature 0.05
  focal-pl test --config vit.yaml --config data/test_sets.yaml --ckpt_path runs/vit/version_0
  focal-pl COMMAND --help                         # every option of a command
"""

__all__ = ["configs_dir", "find_shipped", "main", "resolve_config", "resolve_config_args", "run_lightning",
           "shipped_configs"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``focal-pl`` console script."""
    # torch's C++ warnings come with a stack of native frames (a lost DDP peer printed 15 such
    # lines before focal-pl's own one); errors still show. Set the variable to see them.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"focal-pl {__version__}")
        return 0
    if argv[0] == "configs":
        print(catalogue())
        return 0
    if argv[0] == "export":
        from focal_pl.cli.export import export_main

        return export_main(argv[1:])
    if argv[0] in ("env", "runs"):
        from focal_pl.cli.info import env_main, runs_main

        return (env_main if argv[0] == "env" else runs_main)(argv[1:])
    if argv[0] == "data":
        from focal_pl.cli.data import main as data_main

        return data_main(argv[1:])
    if argv[0] in ("sweep", "ablate"):
        if argv[0] == "sweep":
            from focal_pl.cli.sweep import sweep_main

            return sweep_main(argv[1:])
        from focal_pl.cli.ablate import ablate_main

        return ablate_main(argv[1:])
    if argv[0] not in LIGHTNING_COMMANDS:
        print(f"focal-pl: unknown command {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(command_help(argv[0]), end="")
        return 0
    return run_command(argv)


DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM)


def one_line_with_notes(error: BaseException, text: str) -> str:
    """An error's line with its notes (``add_note``: what last.ckpt holds) joined on."""
    return "; ".join([text.rstrip("."), *getattr(error, "__notes__", [])])


def disk_error(error: OSError) -> str:
    """``could not write FILE: REASON; N MiB free on FOLDER``."""
    from pathlib import Path

    from focal_pl.checkpoint_io import CheckpointWriteError, free_space

    if isinstance(error, CheckpointWriteError):
        return error.strerror
    reason = os.strerror(error.errno) if error.errno else str(error)
    if not error.filename:
        return f"a write failed: {reason}"
    folder = Path(str(error.filename)).parent
    return f"could not write {error.filename}: {reason}; {free_space(folder)} on {folder}"


def run_command(argv: list[str]) -> int:
    """A Lightning command with its exit code: 0 done, 1 failed while running (a disk error, a lost
    DDP peer), 2 cannot run as given (a one-line config error), 130 stopped by Ctrl-C, 143 by
    SIGTERM (128 + the signal, as a shell reports a process the signal ended)."""
    from focal_pl.checkpoint_io import CheckpointError
    from focal_pl.stopping import FitStopped

    try:
        run_lightning(argv)
    except FitStopped as stopped:  # at a step boundary, last.ckpt saved there
        print(f"focal-pl {argv[0]}: {stopped}. Resume: the same command with --ckpt_path last",
              file=sys.stderr, flush=True)
        return stopped.exit_code
    except CheckpointError as error:
        print(f"focal-pl {argv[0]}: {one_line_with_notes(error, str(error))}", file=sys.stderr)
        return 1
    except OSError as error:  # a full, read-only or failing disk: the file, the reason, the free space
        if error.errno not in DISK_ERRORS:
            raise
        print(f"focal-pl {argv[0]}: {one_line_with_notes(error, disk_error(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except RuntimeError as error:  # a collective that failed: a DDP peer was lost
        from focal_pl.distributed import failure_reason, is_distributed_failure

        if not is_distributed_failure(error):
            raise
        said = f"a collective between the DDP processes failed ({failure_reason(error)})"
        print(f"focal-pl {argv[0]}: {one_line_with_notes(error, said)}", file=sys.stderr)
        return 1
    except SystemExit as stop:
        # Lightning ends a command on SIGTERM by a SystemExit with no code, and on Ctrl-C by exit 1
        # raised while handling the KeyboardInterrupt: a scheduler must not read either as success
        if type(stop).__name__ == "SIGTERMException":
            return 143
        if isinstance(stop.__context__, KeyboardInterrupt):
            return 130
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())

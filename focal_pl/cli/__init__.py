"""The ``focal-pl`` command: the dispatcher. Heavy imports (torch, Lightning) happen inside the
commands, so that ``focal-pl --help`` and ``focal-pl configs`` answer at once.

Subcommands live beside it: ``lightning`` (fit / validate / test / predict over LightningCLI),
``experiments`` (sweep, ablate), ``data`` (check, shard).
"""

from __future__ import annotations

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
    if argv[0] == "data":
        from focal_pl.cli.data import main as data_main

        return data_main(argv[1:])
    if argv[0] in ("sweep", "ablate"):
        from focal_pl.cli.experiments import ablate_main, sweep_main

        return (sweep_main if argv[0] == "sweep" else ablate_main)(argv[1:])
    if argv[0] not in LIGHTNING_COMMANDS:
        print(f"focal-pl: unknown command {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(command_help(argv[0]), end="")
        return 0
    try:
        run_lightning(argv)
    except SystemExit as stop:
        # Lightning ends a fit on SIGTERM by a SystemExit with no code: a scheduler must not read
        # that as success (128 + 15, as a process killed by the signal reports)
        if type(stop).__name__ == "SIGTERMException":
            return 143
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())

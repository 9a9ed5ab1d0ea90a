"""The ``focal-pl`` command: LightningCLI's fit / validate / test / predict over YAML configs.

Heavy imports (torch, Lightning) happen inside the commands, so ``focal-pl --help`` answers at once.
A ``--config`` name that is not a file here is looked up among the configs shipped with the
package, so ``focal-pl fit --config vit.yaml`` works from any folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
from importlib import metadata
from pathlib import Path

from focal_pl import __version__

CONFIG_FLAGS = ("--config", "-c")

USAGE = f"""usage: focal-pl COMMAND [--config FILE] [--key.subkey VALUE ...]

FOCAL image-forgery detection and localization on PyTorch Lightning (focal-pl {__version__}).

Lightning commands (every option of the config can also be set on the command line):
  fit        train an extractor; validates by clustering every validation image
  validate   score a model on the validation split
  test       score a model on the test split
  predict    masks for the images of the predict split

Experiments:
  sweep FILE [--count N]     run a W&B sweep file locally, offline, and tabulate the runs
  ablate FILE                run an ablation set (configs/ablation/*.yaml) and tabulate it

Other commands:
  data check SOURCE [ROOT]   decode every item of a data set and list its problems
  data shard SOURCE [ROOT] --out DIR   convert data sets to streaming shards (resumable)
  configs    list the configs shipped with the package (usable by bare name)

Examples:
  focal-pl fit --config demo.yaml                 # CPU demo on synthetic forgeries
  focal-pl fit --config vit.yaml --print_config   # the paper's ViT setting, resolved
  focal-pl fit --config vit.yaml --trainer.devices 4 --model.loss.init_args.temperature 0.05
  focal-pl COMMAND --help                         # every option of a command
"""


def configs_dir() -> Path:
    """Folder of the configs installed with the package."""
    return Path(__file__).resolve().parent / "configs"


def shipped_configs() -> list[str]:
    """Names of the shipped configs, relative to ``configs_dir()``."""
    base = configs_dir()
    return sorted(str(p.relative_to(base)) for p in base.rglob("*.yaml"))


def find_shipped(value: str, folder: Path, *, by_name: bool = False) -> Path | None:
    """The shipped file ``value`` names in ``folder`` (``.yaml`` optional; with ``by_name`` also a
    path elsewhere matched by its file name alone), or None."""
    names = [value, *([Path(value).name] if by_name else []), f"{value}.yaml"]
    return next((folder / name for name in names if (folder / name).is_file()), None)


def resolve_config(value: str) -> str:
    """A config path as given when it exists, else the shipped config of that name (``.yaml``
    optional), else unchanged so that the parser reports the missing file."""
    if Path(value).exists():
        return value
    found = find_shipped(value, configs_dir())
    return str(found) if found else value


def resolve_config_args(argv: list[str]) -> list[str]:
    """Apply ``resolve_config`` to every ``--config X`` / ``--config=X`` / ``-c X`` argument."""
    out: list[str] = []
    expect_value = False
    for arg in argv:
        if expect_value:
            out.append(resolve_config(arg))
            expect_value = False
        elif arg in CONFIG_FLAGS:
            out.append(arg)
            expect_value = True
        elif arg.startswith("--config="):
            out.append("--config=" + resolve_config(arg.split("=", 1)[1]))
        else:
            out.append(arg)
    return out


def build_cli_class():
    """The LightningCLI subclass (built on demand: importing Lightning takes seconds)."""
    from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

    class SaveAndLogConfig(SaveConfigCallback):
        """Writes config.yaml to the run folder and gives every logger the whole resolved config
        (W&B shows it as the run's config, so runs can be compared key by key)."""

        def setup(self, trainer, pl_module, stage) -> None:
            # Lightning writes to trainer.log_dir, which for W&B is the shared save_dir: every
            # run would overwrite one file. The run folder is the one the checkpoints go to.
            if self.already_saved:
                return
            from focal_pl.runs import run_dir

            folder = run_dir(trainer)
            if trainer.is_global_zero:
                folder.mkdir(parents=True, exist_ok=True)
                self.parser.save(self.config, str(folder / self.config_filename), skip_unset=False,
                                 overwrite=True, multifile=self.multifile)
                self.save_config(trainer, pl_module, stage)
            self.already_saved = trainer.strategy.broadcast(True)

        def save_config(self, trainer, pl_module, stage) -> None:
            config = self.parser.dump(self.config, skip_unset=False, format="yaml")
            import yaml

            for logger in trainer.loggers:
                experiment = getattr(logger, "experiment", None)
                if hasattr(experiment, "config") and hasattr(experiment.config, "update"):
                    experiment.config.update(yaml.safe_load(config), allow_val_change=True)

    from focal_pl.callbacks import ClusterEvaluator
    from focal_pl.evaluation.callbacks import PredictionWriter, TestReport

    class FocalCLI(LightningCLI):
        save_config_class = SaveAndLogConfig

        """LightningCLI with the clustering evaluation always on: validation (``evaluation``), the
        test report (``testing``) and the prediction writer (``prediction``)."""

        def add_arguments_to_parser(self, parser) -> None:
            parser.add_lightning_class_args(ClusterEvaluator, "evaluation")
            parser.add_lightning_class_args(TestReport, "testing")
            parser.add_lightning_class_args(PredictionWriter, "prediction")

        def before_instantiate_classes(self) -> None:
            resolve_last_checkpoint(self.config)

        def before_fit(self) -> None:
            # torch has SyncBatchNorm for GPUs only; say which setting to change (hrnet.yaml sets it)
            strategy = self.trainer.strategy
            if getattr(strategy, "_layer_sync", None) is not None and strategy.root_device.type == "cpu":
                raise SystemExit("focal-pl: trainer.sync_batchnorm needs GPUs (torch has no CPU "
                                 "SyncBatchNorm); on CPU processes add --trainer.sync_batchnorm false")

        def _parse_ckpt_path(self) -> None:
            # Lightning replaces the model config by the checkpoint's hyperparameters, which would
            # silently drop evaluation-time choices (`--model.init_args.clusterer...`). When the
            # model is configured, that config wins; the checkpoint's only fills in a missing one.
            subcommand = self.config.get("subcommand")
            model = self.config[subcommand].get("model") if subcommand else None
            if model is not None and model.get("class_path"):
                return
            super()._parse_ckpt_path()

    return FocalCLI


def resolve_last_checkpoint(config) -> None:
    """``fit --ckpt_path last``: the newest ``last.ckpt`` of this config's runs (its logger's
    ``save_dir/name/version_*``), continued in that same run folder, so that its metrics, pictures
    and checkpoints carry on where the interrupted run stopped. Left as is when none exists."""
    subcommand = config.get("subcommand")
    if subcommand != "fit" or config[subcommand].get("ckpt_path") != "last":
        return
    logger = config[subcommand].trainer.get("logger")
    args = getattr(logger, "init_args", None) if logger is not None and not isinstance(logger, (bool, list)) else None
    if args is None or not args.get("save_dir"):
        return
    base = Path(args.save_dir) / (args.get("name") or "lightning_logs")
    found = sorted(base.glob("version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        return
    config[subcommand].ckpt_path = str(found[-1])
    version = found[-1].parent.parent.name.removeprefix("version_")
    args.version = int(version) if version.isdigit() else version
    print(f"resuming from {found[-1]}")


def run_lightning(argv: list[str]):
    """Run a Lightning subcommand; returns the LightningCLI object (its trainer, model, data)."""
    from focal_pl.data import ForgeryDataModule
    from focal_pl.module import FocalModule

    cli_class = build_cli_class()
    # The arguments go through sys.argv, not `args=`: DDP relaunches this command from sys.argv
    # on every other rank, so it must hold the resolved command line.
    program = sys.argv
    sys.argv = [sys.argv[0], *resolve_config_args(argv)]
    try:
        return cli_class(
            FocalModule,
            ForgeryDataModule,
            subclass_mode_model=True,
            save_config_callback=cli_class.save_config_class,
            auto_configure_optimizers=False,  # FocalModule takes optimizer / scheduler itself
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"default_env": False},
        )
    finally:
        sys.argv = program


LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def help_cache_file(command: str) -> Path:
    """Where the help text of ``focal-pl COMMAND --help`` is kept: keyed by the versions of
    focal-pl, Lightning and jsonargparse and by the package's source files, so any change rebuilds it."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha1(command.encode())
    for name in ("lightning", "jsonargparse", "torch"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            digest.update(f"{name}={metadata.version(name)}".encode())
    for source in sorted(package.rglob("*.py")):
        digest.update(f"{source.relative_to(package)}:{source.stat().st_mtime_ns}".encode())
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "focal-pl"
    return root / f"help-{command}-{digest.hexdigest()[:16]}.txt"


def command_help(command: str) -> str:
    """``focal-pl COMMAND --help``: LightningCLI's full help, built once (it imports Lightning and
    reads every class signature, which takes seconds) and then read from the cache."""
    cache = help_cache_file(command)
    if cache.is_file():
        return cache.read_text()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
        run_lightning([command, "--help"])
    text = buffer.getvalue()
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(text)
    return text


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
        print("\n".join(shipped_configs()))
        return 0
    if argv[0] == "data":
        from focal_pl.data.commands import main as data_main

        return data_main(argv[1:])
    if argv[0] in ("sweep", "ablate"):
        from focal_pl.experiments import ablate_main, sweep_main

        return (sweep_main if argv[0] == "sweep" else ablate_main)(argv[1:])
    if argv[0] not in LIGHTNING_COMMANDS:
        print(f"focal-pl: unknown command {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(command_help(argv[0]), end="")
        return 0
    run_lightning(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

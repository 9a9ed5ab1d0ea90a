"""``focal-pl fit | validate | test | predict``: LightningCLI over YAML configs.

Lightning is imported inside the functions, so that ``focal-pl --help`` answers at once. The CLI
adds to LightningCLI: shipped configs by bare name, the run's callbacks (``focal_pl.engine``), a
training budget in images, one run-folder layout (``runfolders``), ``--ckpt_path last | best |
RUN_FOLDER`` resolved unambiguously, a checkpoint checked against the configured model, refusal to
score an untrained model, release files (``--weights``), config errors as one line before any run
folder exists, and quiet output.

The command line is parsed as given (``sys.argv`` is never rewritten): a process a DDP launcher
starts runs the same command line and takes the launching rank's run folder from it by broadcast
(``focal_pl.training.runs.run_dir``), so it makes no folder of its own.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from focal_pl.cli.shipped import resolve_config

CONFIG_FLAGS = ("--config", "-c")


def config_positions(argv: list[str]) -> list[int]:
    """Indices of the ``--config X`` / ``--config=X`` / ``-c X`` arguments."""
    return [i for i, a in enumerate(argv) if a in CONFIG_FLAGS or a.startswith("--config=")]


def weights_option(argv: list[str]) -> str | None:
    """The value of ``--weights`` (a release file), if given."""
    for i, arg in enumerate(argv):
        if arg == "--weights" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--weights="):
            return arg.split("=", 1)[1]
    return None


def with_release(argv: list[str]) -> list[str]:
    """The arguments LightningCLI parses: ``argv`` with, for ``--weights NAME.pt``, the release's model
    and input size laid over the user's configs (options on the command line still win), as
    ``--model=...`` and ``--data.image_size=...`` right after the last ``--config``. The release file
    is verified first (its weights' sha256)."""
    value = weights_option(argv)
    if not value:
        return argv
    from focal_pl.release import ReleaseError, read_release

    try:
        release = read_release(value)
    except ReleaseError as error:
        raise ValueError(f"weights: {error}") from error
    configs = config_positions(argv)
    after = configs[-1] + (2 if argv[configs[-1]] in CONFIG_FLAGS else 1) if configs else 1
    laid = [f"--model={json.dumps(release['model'])}", f"--data.image_size={int(release.get('image_size') or 1024)}"]
    return [*argv[:after], *laid, *argv[after:]]


def build_cli_class():
    """The LightningCLI subclass (built on demand: importing Lightning takes seconds)."""
    import yaml
    from jsonargparse import ActionConfigFile, ArgumentError
    from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

    from focal_pl.cli import preflight, runfolders
    from focal_pl.cli.errors import ConfigError, one_line
    from focal_pl.engine import progress_for, run_callbacks
    from focal_pl.files.paths import collecting, missing_so_far, note_missing, start_collecting, stop_collecting
    from focal_pl.evaluation import PredictionWriter, TestReport, ValidationRecord
    from focal_pl.evaluation.prediction import PredictionFolderError
    from focal_pl.internals import option_names
    from focal_pl.training.budget import TrainingBudget
    from focal_pl.training.runs import run_dir

    class ShippedConfigFile(ActionConfigFile):
        """``--config``: a file, or a shipped config by its name (``vit.yaml``, ``data/test_sets``)."""

        def __call__(self, parser, cfg, values, option_string=None):
            super().__call__(parser, cfg, resolve_config(str(values)), option_string)

    class SaveAndLogConfig(SaveConfigCallback):
        """Writes config.yaml to the run folder and gives every logger the whole resolved config
        (W&B shows it as the run's config, so runs can be compared key by key)."""

        def setup(self, trainer, pl_module, stage) -> None:
            if self.already_saved:
                return
            folder = run_dir(trainer)
            if trainer.is_global_zero:
                folder.mkdir(parents=True, exist_ok=True)
                self.parser.save(self.config, str(folder / self.config_filename), skip_unset=False,
                                 overwrite=True, multifile=self.multifile)
                self.save_config(trainer, pl_module, stage)
            self.already_saved = trainer.strategy.broadcast(True)

        def save_config(self, trainer, pl_module, stage) -> None:
            config = yaml.safe_load(self.parser.dump(self.config, skip_unset=False, format="yaml"))
            for logger in trainer.loggers:
                experiment = getattr(logger, "experiment", None)
                if hasattr(experiment, "config") and hasattr(experiment.config, "update"):
                    experiment.config.update(config, allow_val_change=True)

    class FocalCLI(LightningCLI):
        """LightningCLI with the run's callbacks, a training budget in images, one run-folder layout
        and one-line config errors. ``argv``: the command line after ``focal-pl``, as typed."""

        save_config_class = SaveAndLogConfig

        def __init__(self, argv: list[str], **kwargs: Any) -> None:
            self.argv = list(argv)
            self.run_folder: Path | None = None
            super().__init__(args=with_release(self.argv), **kwargs)

        def init_parser(self, **kwargs):
            kwargs.setdefault("prog", "focal-pl")
            parser = self.parser_class(**kwargs)
            parser.add_argument("-c", "--config", action=ShippedConfigFile,
                                help="a configuration file (YAML), or a shipped config by name (focal-pl configs)")
            return parser

        def add_arguments_to_parser(self, parser) -> None:
            parser.add_lightning_class_args(ValidationRecord, "evaluation")
            parser.add_lightning_class_args(TestReport, "testing")
            parser.add_lightning_class_args(PredictionWriter, "prediction")
            parser.add_lightning_class_args(TrainingBudget, "budget")
            parser.add_argument("--run.name", type=str | None, default=None,
                                help="run folder name (default: the first config's stem)")
            parser.add_argument("--run.version", type=str | None, default=None,
                                help="run folder version (default: version_N + what the command line changes)")
            parser.add_argument("--run.allow_untrained", type=bool, default=False,
                                help="let validate / test / predict score a model without a checkpoint")
            parser.add_argument("--weights", type=str | None, default=None,
                                help="a release file (focal-pl export): its model and weights, for test / predict")
            # every run writes its run folder, unless a config says otherwise
            parser.set_defaults({"trainer.logger": {"class_path": "focal_pl.training.loggers.CSVLogger",
                                                    "init_args": {"save_dir": "runs"}}})
            # the training augmentations pad back to the input size: one number, said once
            parser.link_arguments("data.image_size", "data.augmentations.init_args.pad_to")

        # ------------------------------------------------------------ errors as one line

        # Every missing file or folder the config names (data roots, shard folders, weights files) is
        # noted while the config is parsed and its classes built (focal_pl.files.paths), and said
        # together, one line each, before anything runs.

        def parse_arguments(self, parser, args) -> None:
            start_collecting()
            try:
                super().parse_arguments(parser, args)
            except ArgumentError as error:
                self._refuse(one_line(error, None, option_names(parser), self.argv), error)

        def _refuse(self, line: str | None = None, error: BaseException | None = None) -> None:
            """Stop with the missing paths noted so far and ``line``, each on a line of its own; the
            folders made for the command are taken back."""
            runfolders.release_unused()
            lines = list(dict.fromkeys([*stop_collecting(), *([line] if line else [])]))
            raise ConfigError("\n".join(lines)) from error

        def instantiate_classes(self) -> None:
            try:
                super().instantiate_classes()
                if collecting() and missing_so_far():  # built with a path missing: refused, not run
                    self._refuse()
                stop_collecting()
                ckpt = self.config[self.subcommand].get("ckpt_path") if self.subcommand else None
                if ckpt:
                    runfolders.check_fits(self.model, Path(ckpt))
            except ConfigError:
                runfolders.release_unused()
                raise
            except ValueError as error:
                if str(error).startswith("ckpt_path:"):  # the checkpoint does not fit the model
                    self._refuse(str(error), error)
                self._refused(error)
            except Exception as error:  # a constructor refused a value: name the key
                self._refused(error)

        def _refused(self, error: BaseException) -> None:
            config = self.config.get(self.config.get("subcommand") or "", self.config)
            self._refuse(one_line(error, config.as_dict() if hasattr(config, "as_dict") else None, argv=self.argv),
                         error)

        # ------------------------------------------------------------ run folders and checkpoints

        def before_instantiate_classes(self) -> None:
            command = self.config.get("subcommand")
            if command is None:
                return
            config = self.config[command]
            # a step or epoch count given to the trainer wins over the budget in images (a quick try)
            if config.trainer.get("max_steps") not in (None, -1) or config.trainer.get("max_epochs") is not None:
                config.budget.images = None
            if config.trainer.get("val_check_interval") is not None:
                config.budget.validate_every = None
            # every file and folder the resolved config names, all at once, before any folder is made
            resolved = yaml.safe_load(self.parser.dump(self.config, skip_unset=False, format="yaml")) or {}
            for line, path in preflight.missing(resolved.get(command, resolved)):
                note_missing(line, path)
            if missing_so_far():
                self._refuse()
            try:
                self._refuse_untrained(command, config)
                self._place_run(command, config)
            except ValueError as error:
                self._refuse(str(error), error)

        def _logger_args(self, config):
            logger = config.trainer.get("logger")
            if logger is None or isinstance(logger, (bool, list)):
                return None
            return getattr(logger, "init_args", None)

        def _place_run(self, command: str, config) -> None:
            """Choose (and, on the launching rank, make) the folder this command writes to; a process
            a DDP launcher started takes the launching rank's folder by broadcast at set-up."""
            argv = self.argv[1:]
            args = self._logger_args(config)
            if args is None:
                return
            save_dir = Path(args.get("save_dir") or config.trainer.get("default_root_dir") or "runs")
            given = args.get("name") if args.get("name") not in (None, "", "lightning_logs") else None
            weights = config.get("weights")
            name = config.run.name or given or (Path(weights).stem if weights else runfolders.run_name(argv))
            runs = save_dir / name
            ckpt = config.get("ckpt_path")
            path = runfolders.resolve_checkpoint(str(ckpt), runs, command) if ckpt is not None else None
            if path is not None:
                config.ckpt_path = str(path)
            if runfolders.launch_rank() != 0:  # the launching rank made the folder
                args.save_dir, args.name = str(save_dir), name
                return
            folder = None
            if path is not None:
                run = runfolders.run_of(path)
                if command == "fit":
                    folder = self._resume(config, path, run)
                elif run is not None and config.run.version is None:  # write beside the trained run
                    runfolders.check_checkpoint(path)
                    folder = runfolders.reserve(run, command)
                else:
                    runfolders.check_checkpoint(path)
            if folder is None:
                if config.run.version is not None:
                    folder = runs / config.run.version
                    if command == "fit" and (folder / "checkpoints").is_dir():
                        raise ValueError(f"run.version: {folder} holds a run already; choose another version, "
                                         "or resume it with --ckpt_path " + str(folder))
                    runfolders.reserve(folder, exist_ok=True)  # named by the caller (a sweep made it for its log)
                else:
                    kind = f"version:{runfolders.run_slug(argv)}" if command == "fit" else command
                    folder = runfolders.reserve(runs, kind)
                if command == "fit":
                    runfolders.lock_run(folder)
            args.save_dir, args.name, args.version = str(folder.parent.parent), folder.parent.name, folder.name
            self.run_folder = folder

        def _resume(self, config, path: Path, run: Path | None) -> Path | None:
            """The run folder a fit resumes in (locked for this process), after checking the checkpoint
            and that the config is the run's; None for a checkpoint outside any run folder."""
            if run is None:
                step = runfolders.check_checkpoint(path)
                print(f"resuming from {path} (step {step}) in a new run folder")
                return None
            runfolders.lock_run(run)  # before reading its checkpoint and config: a fit under way rewrites them
            step = runfolders.check_checkpoint(path)
            current = yaml.safe_load(self.parser.dump(self.config, skip_unset=False, format="yaml"))
            changed = runfolders.config_differences(run / "config.yaml", current.get("fit", current))
            if changed:
                shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
                raise ValueError(f"ckpt_path: {run} was trained with another config ({shown}); resume with "
                                 "the config it was started with, or start a new run without --ckpt_path")
            print(f"resuming {run} from step {step} ({path.name}){runfolders.later_checkpoints(path, step)}")
            return run

        # ------------------------------------------------------------ before each command

        @staticmethod
        def _refuse_untrained(command: str, config) -> None:
            """validate / test / predict without a checkpoint would score random weights: refuse,
            unless the extractor brings trained weights itself (a fusion of checkpoints, a weights
            file) or the user says it is on purpose."""
            if config.get("weights") is not None:
                if command == "fit":
                    raise ValueError("weights: a release file is for test / predict / validate; to train from "
                                     "pretrained weights give them to the extractor (its `weights` option)")
                if config.get("ckpt_path") is not None:
                    raise ValueError("weights: give a release file (--weights) or a checkpoint (--ckpt_path), not both")
                return
            if command == "fit" or config.get("ckpt_path") is not None or config.run.allow_untrained:
                return
            extractor = (config.get("model") or {}).get("init_args", {}).get("extractor") or {}
            args = extractor.get("init_args") or {}
            if str(extractor.get("class_path", "")).endswith("FusedExtractor") or args.get("weights"):
                return
            raise ValueError(
                f"ckpt_path: {command} without a checkpoint would score an untrained model; pass "
                "--ckpt_path (a .ckpt file, a run folder, or last / best of this config's runs), or "
                "--run.allow_untrained true to do it on purpose")

        def _check_data(self, stage: str) -> None:
            """An empty or missing data source is one line naming it, before anything runs."""
            if hasattr(self.datamodule, "check"):
                try:
                    self.datamodule.check(stage)
                except ValueError as error:
                    raise ConfigError(f"data.{error}") from error

        def _load_release(self, command: str) -> None:
            """``--weights NAME.pt``: the release's weights into the model its config built."""
            weights = self.config[command].get("weights")
            if weights:
                from focal_pl.release import read_release

                self.model.load_state_dict(read_release(weights)["weights"])

        def _own_tables(self, command: str) -> None:
            """validate / test print focal-pl's summary and report: Lightning's metric table (a
            test/loss alone, after the report) only with an explicit --verbose true."""
            if not any(a == "--verbose" or a.startswith("--verbose=") for a in self.argv):
                self.config_init[command]["verbose"] = False

        def before_validate(self) -> None:
            self._check_data("validate")
            self._load_release("validate")
            self._own_tables("validate")

        def before_predict(self) -> None:
            self._check_data("predict")
            self._load_release("predict")
            # the writer keeps what it writes; Lightning would also keep every batch's output in memory
            if not any(a.startswith("--return_predictions") for a in self.argv):
                self.config_init["predict"]["return_predictions"] = False
            writer = next((c for c in self.trainer.callbacks if isinstance(c, PredictionWriter)), None)
            if writer is not None and runfolders.launch_rank() == 0:
                folder = Path(writer.output_dir) if writer.output_dir else self.run_folder
                if folder is not None:
                    try:
                        writer.claim(folder)
                    except PredictionFolderError as error:
                        runfolders.release_unused()
                        raise ConfigError(str(error)) from error

        def before_fit(self) -> None:
            self._check_data("fit")
            # torch has SyncBatchNorm for GPUs only; say which setting to change (hrnet.yaml sets it)
            if self.config["fit"]["trainer"].get("sync_batchnorm") and self.trainer.strategy.root_device.type == "cpu":
                raise ConfigError("trainer.sync_batchnorm: needs GPUs (torch has no CPU SyncBatchNorm); "
                                  "on CPU processes add --trainer.sync_batchnorm false")

        def before_test(self) -> None:
            """The overlap check compares the test sets with what the checkpoint's run trained and
            validated on (its saved config), not with this command's data section."""
            self._check_data("test")
            self._load_release("test")
            self._own_tables("test")
            ckpt = self.config.get("test", {}).get("ckpt_path")
            run = runfolders.run_of(Path(ckpt)) if ckpt else None
            if run is None or not hasattr(self.datamodule, "compare_with"):
                return
            try:
                trained = runfolders.trained_data(run / "config.yaml")
            except Exception as error:  # noqa: BLE001 - the check is a warning, never a stop
                logging.getLogger("focal_pl").warning(
                    "cannot check the test sets against the training data of %s: %s", run, str(error).splitlines()[0])
                return
            self.datamodule.compare_with(trained, str(run / "config.yaml"))

        def instantiate_trainer(self, **kwargs):
            """The configured trainer, with the run's callbacks it was not given (``focal_pl.engine``)."""
            trainer = dict(self.config_init[self.subcommand]["trainer"] if self.subcommand
                           else self.config_init["trainer"])
            configured = list(trainer.get("callbacks") or [])
            configured += [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]
            trainer, progress = progress_for(trainer, configured)
            added = [*progress, *run_callbacks(configured, command=self.argv)]
            kwargs = {"enable_progress_bar": trainer.get("enable_progress_bar"),
                      "callbacks": [*(trainer.get("callbacks") or []), *added], **kwargs}
            return super().instantiate_trainer(**kwargs)

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


def run_lightning(argv: list[str]):
    """Run a Lightning subcommand; returns the LightningCLI object (its trainer, model, data).
    Config errors raise ``ConfigError`` (a ``SystemExit`` with code 2) after one line on stderr."""
    from focal_pl.cli import runfolders
    from focal_pl.cli.errors import ConfigError
    from focal_pl.data import ForgeryDataModule
    from focal_pl.files.paths import stop_collecting
    from focal_pl.module import FocalModule
    from focal_pl.training.quiet import quiet

    quiet(commands=True)  # the lines the commands say in their own words, and the tips
    cli_class = build_cli_class()
    try:
        return cli_class(
            argv,
            model_class=FocalModule,
            datamodule_class=ForgeryDataModule,
            subclass_mode_model=True,
            seed_everything_default=0,  # what Lightning picks for an unseeded run, said by the config, not a warning
            save_config_callback=cli_class.save_config_class,
            auto_configure_optimizers=False,  # FocalModule takes optimizer / scheduler itself
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"default_env": False, "exit_on_error": False, "allow_abbrev": False},
        )
    except ValueError as error:  # a release file that cannot be used (with_release)
        runfolders.release_unused()
        print(f"focal-pl {argv[0]}: {error}", file=sys.stderr)
        raise ConfigError(str(error)) from error
    except ConfigError as error:
        runfolders.release_unused()
        for line in error.message.splitlines():  # each problem on a line of its own
            print(f"focal-pl {argv[0]}: {line}", file=sys.stderr)
        raise
    except BaseException:
        runfolders.release_unused()  # failed before writing anything: no empty folder stays behind
        raise
    finally:
        stop_collecting()
        runfolders.release_locks()


def run_command(argv: list[str]) -> int:
    """A Lightning command with its exit code (docs/runs.md): 0 done, 1 failed while running (a disk
    error, a lost DDP peer, a non-finite loss, nothing predicted), 2 cannot run as given (a one-line
    config error), 130 stopped by Ctrl-C, 143 by SIGTERM (128 + the signal, as a shell reports a
    process the signal ended)."""
    from focal_pl.cli.errors import ConfigError
    from focal_pl.cli.exits import failure_line

    try:
        run_lightning(argv)
    except ConfigError as error:
        return error.code
    except BaseException as error:  # noqa: BLE001 - each kind of failure has its exit code and line
        found = failure_line(error)
        if found is None:
            raise
        code, line = found
        from focal_pl.cli.runfolders import launch_rank
        from focal_pl.training.stopping import FitStopped

        # a stop is said once, by the launching rank (every rank stops at the same step)
        if line and not (isinstance(error, FitStopped) and launch_rank() != 0):
            print(f"focal-pl {argv[0]}: {line}", file=sys.stderr, flush=True)
        return code
    return 0


"""The ``focal-pl`` command: one jsonargparse subcommand tree.

``COMMANDS`` lists every subcommand with the module that builds and runs it. ``fit``, ``validate``,
``test`` and ``predict`` are LightningCLI's own subcommand parsers (``focal_pl.cli.lightning``);
the others are jsonargparse parsers of their modules (``add_arguments`` + ``run``). Only the branch
being run is built whole (Lightning's take seconds: they read every class signature), so
``focal-pl --help`` and the light commands answer at once; help texts are cached once built.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
from dataclasses import dataclass
from importlib import import_module, metadata
from pathlib import Path

from focal_pl import __version__


@dataclass(frozen=True)
class Command:
    """One subcommand: the module that builds its parser and runs it, and its line in the help.
    ``forwards``: its unknown Lightning options (``--trainer.*``, ``--model.*``, ...) go to the runs
    it starts (``ablate``, ``sweep``)."""

    module: str
    help: str
    forwards: bool = False


LIGHTNING = "focal_pl.cli.lightning"
COMMANDS: dict[str, Command] = {
    "fit": Command(LIGHTNING, "train an extractor; validates by clustering every validation image"),
    "validate": Command(LIGHTNING, "score a model on the validation split"),
    "test": Command(LIGHTNING, "score a model on the test sets (one report per set)"),
    "predict": Command(LIGHTNING, "masks, score maps and overlays for the images of the predict split"),
    "export": Command("focal_pl.cli.export", "a release file (weights-only, checksummed, with a model card) of a "
                                             "run or of the official FOCAL weights"),
    "runs": Command("focal_pl.cli.info", "the runs under runs/: config, version, state, steps, best score, commit"),
    "env": Command("focal_pl.cli.info", "the code version, package versions and machine a run here records"),
    "configs": Command("focal_pl.cli.shipped", "the shipped configs and sweeps, with what each is for"),
    "data": Command("focal_pl.cli.data", "check a data set (decode every item) or convert it to shards"),
    "ablate": Command("focal_pl.cli.ablate", "run an ablation set (configs/ablation/*.yaml) and tabulate it", True),
    "sweep": Command("focal_pl.cli.sweep", "run a W&B sweep file locally, offline, and tabulate the runs", True),
}
LIGHTNING_COMMANDS = tuple(name for name, command in COMMANDS.items() if command.module == LIGHTNING)
# options of the Lightning commands, which ablate and sweep hand to every run they start
RUN_OPTIONS = ("--trainer.", "--model", "--data", "--budget.", "--evaluation.", "--testing.", "--prediction.",
               "--run.", "--ckpt_path", "--config", "-c", "--seed_everything", "--weights")

DESCRIPTION = (f"FOCAL image-forgery detection and localization on PyTorch Lightning (focal-pl {__version__}). "
               "Every option of a config can also be set on the command line: focal-pl COMMAND --help. "
               "Exit codes: 0 done, 1 failed while running, 2 cannot run as given, 130 / 143 stopped by "
               "Ctrl-C / SIGTERM (docs/runs.md).")


def build_parser(command: str | None = None):
    """The focal-pl command tree: every subcommand, with ``command``'s branch built whole (a tool
    command's; a Lightning command's branch is LightningCLI's, built by ``focal_pl.cli.lightning``)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="focal-pl", description=DESCRIPTION, exit_on_error=False, default_env=False)
    parser.add_argument("-V", "--version", action="version", version=f"focal-pl {__version__}")
    subcommands = parser.add_subcommands(dest="command")
    for name, spec in COMMANDS.items():
        branch = ArgumentParser(prog=f"focal-pl {name}", description=spec.help, exit_on_error=False,
                                default_env=False)
        subcommands.add_subcommand(name, branch, help=spec.help)  # before its own subcommands, if any
        if name == command and spec.module != LIGHTNING:
            import_module(spec.module).add_arguments(branch, name)
    return parser


def split_run_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the command's own arguments, the Lightning options it hands on to its runs): an option and
    its value go to the runs when it is one of ``RUN_OPTIONS``."""
    own, runs, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith(RUN_OPTIONS):
            takes_value = "=" not in arg and i + 1 < len(argv) and not argv[i + 1].startswith("-")
            runs += argv[i:i + 1 + takes_value]
            i += 1 + takes_value
        else:
            own.append(arg)
            i += 1
    return own, runs


def first_word(argv: list[str]) -> str | None:
    """The subcommand: the first argument that is not an option."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``focal-pl`` console script; returns the exit code."""
    # torch's C++ warnings come with a stack of native frames (a lost DDP peer printed 15 such
    # lines before focal-pl's own one); errors still show. Set the variable to see them.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    argv = list(sys.argv[1:] if argv is None else argv)
    name = first_word(argv)
    if name is None and set(argv) <= {"-h", "--help"} or argv in (["help"],):
        print(cached_help(None), end="")
        return 0
    if name in COMMANDS and len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(cached_help(name), end="")
        return 0
    if name in LIGHTNING_COMMANDS:
        from focal_pl.cli.lightning import run_command

        return run_command(argv)
    return run_tool(argv, name)


def run_tool(argv: list[str], name: str | None) -> int:
    """A tool command (not Lightning's): its branch of the tree parsed, then its module's ``run``."""
    from jsonargparse import ArgumentError

    spec = COMMANDS.get(name or "")
    own, forwarded = split_run_options(argv) if spec and spec.forwards else (argv, [])
    parser = build_parser(name)
    try:
        config = parser.parse_args(own)
    except ArgumentError as error:
        from focal_pl.cli.errors import one_line

        print(f"focal-pl{' ' + name if spec else ''}: {one_line(error)}", file=sys.stderr)
        return 2
    options = config[config.command]
    if spec.forwards:
        options.run_args = forwarded
    from focal_pl.cli.errors import UsageError

    try:
        return int(import_module(spec.module).run(options, config.command) or 0)
    except UsageError as error:
        for line in str(error).splitlines():  # each problem on a line of its own
            print(f"focal-pl {config.command}: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"focal-pl {config.command}: interrupted", file=sys.stderr)
        return 130


def help_cache_file(command: str | None) -> Path:
    """Where the help text of ``focal-pl [COMMAND] --help`` is kept: keyed by the versions of
    focal-pl, Lightning and jsonargparse and by the package's source files, so any change rebuilds it."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha1(str(command).encode())
    for name in ("lightning", "jsonargparse", "torch"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            digest.update(f"{name}={metadata.version(name)}".encode())
    for source in sorted(package.rglob("*.py")):
        digest.update(f"{source.relative_to(package)}:{source.stat().st_mtime_ns}".encode())
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "focal-pl"
    return root / f"help-{command or 'focal-pl'}-{digest.hexdigest()[:16]}.txt"


def cached_help(command: str | None) -> str:
    """The help of the tree (``command`` None) or of one subcommand: built once (a Lightning
    command's reads every class signature, which takes seconds), then read from the cache."""
    cache = help_cache_file(command)
    if cache.is_file():
        return cache.read_text()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
        if command in LIGHTNING_COMMANDS:
            from focal_pl.cli.lightning import run_lightning

            run_lightning([command, "--help"])
        else:
            build_parser(command).parse_args([command, "--help"] if command else ["--help"])
    text = buffer.getvalue()
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(text)
    return text


if __name__ == "__main__":
    sys.exit(main())

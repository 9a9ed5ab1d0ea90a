"""Config errors as one line that names the key and the rule, instead of a usage page or a traceback.

jsonargparse reports a bad value deep inside nested union / subclass messages, and an exception
raised by a class's constructor (``temperature must be > 0``) arrives without the config key it
came from. ``one_line`` finds both: the innermost reason, and the dotted key.
"""

from __future__ import annotations

import difflib
import re
import traceback
from collections.abc import Iterable
from typing import Any


SECTIONS = {"ForgeryDataModule": "data"}  # classes the CLI configures as a plain section, and its key


class UsageError(Exception):
    """A tool command (ablate, sweep, export ...) that cannot run as given: its message is printed as
    one line after ``focal-pl COMMAND:``, exit code 2."""


class ConfigError(SystemExit):
    """A config problem found before anything ran: printed as one line, exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


def _key_of_class(config: Any, class_name: str, prefix: str = "") -> str | None:
    """The dotted key under which ``config`` (nested dicts / Namespaces) builds ``class_name``."""
    items = config.items() if hasattr(config, "items") else []
    for key, value in items:
        path = f"{prefix}{key}"
        if key == "class_path" and isinstance(value, str) and value.rsplit(".", 1)[-1] == class_name:
            return prefix.rstrip(".")
        if hasattr(value, "items"):
            found = _key_of_class(value, class_name, f"{path}.")
            if found:
                return found
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if hasattr(item, "items"):
                    found = _key_of_class(item, class_name, f"{path}.{i}.")
                    if found:
                        return found
    return None


def _chain(error: BaseException | None) -> list[BaseException]:
    """An exception and the ones it was raised from (jsonargparse wraps constructor errors)."""
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _raising_class(error: BaseException) -> str | None:
    """The class whose ``__init__`` raised ``error`` (the innermost such frame), if any."""
    name = None
    for link in reversed(_chain(error)):
        for frame, _ in traceback.walk_tb(link.__traceback__):
            if frame.f_code.co_name == "__init__" and "self" in frame.f_locals:
                name = type(frame.f_locals["self"]).__name__
        if name:
            return name
    return name


def _parameters(text: str) -> set[str]:
    """The constructor parameters of every class a message names (``class_path 'x.y.Z'``)."""
    import importlib
    import inspect

    names: set[str] = set()
    for path in re.findall(r"class_path '([\w.]+)'", text):
        module, _, cls = path.rpartition(".")
        try:
            target = getattr(importlib.import_module(module), cls)
            for klass in [target, *target.__subclasses__()]:
                names |= set(inspect.signature(klass.__init__).parameters) - {"self", "args", "kwargs"}
        except Exception:  # noqa: BLE001 - a hint is optional
            continue
    return names


INNER = re.compile(r"^\s*(?:- )?(?:Problem with given class_path '[^']+':|Parser key \"[^\"]+\":|"
                   r"Does not validate against any of the Union subtypes|Subtypes:|Errors:|"
                   r"Given value type:|Given value:|Expected a <class|Not a valid subclass of|"
                   r"Subclass types expect one of:|Type <class)")


MISMATCH = re.compile(r"does not correspond to a subclass|^Expected a <class|Not a valid subclass|^Type <class|"
                      r"^Import path|Does not validate against any of the Union subtypes|^Subtypes:|^Errors:|"
                      r"^Given value|^Subclass types expect one of|^a class path \(str\)|^a dict with|^a dict without")


def innermost_reason(text: str) -> str:
    """The most specific line of a (possibly nested) jsonargparse message: for a union of types, the
    error of the type the value was meant for (a constructor's own, e.g. a reader's missing folder),
    not the other types' mismatches, at whatever depth of the union it is."""
    lines = [line.strip(" -") for line in text.splitlines() if line.strip()]
    if "Errors:" in lines:  # a union: each alternative's error, one a line (unions nest)
        own = [line for line in lines[lines.index("Errors:") + 1:]
               if not MISMATCH.search(line) and not INNER.match(line)]
        if own:
            return own[0]
    useful = [line for line in lines if not INNER.match(line) and not line.startswith(("Traceback", "File "))]
    # the deepest reason is the last useful line that says something about a value
    for line in reversed(useful):
        if len(line) > 8:
            return line
    return lines[-1] if lines else text


def wrong_option(text: str) -> str | None:
    """The option a message says is unknown, if it says so."""
    match = re.search(r"Option '([^']+)' is not accepted|Key \"([^\"]+)\" is not expected|"
                      r"unrecognized arguments: --([\w.]+)", text)
    return next((g for g in match.groups() if g), None) if match else None


def unknown_option_hint(text: str, known: Iterable[str]) -> str:
    """The closest accepted option to the one a message says is unknown, if any is close."""
    wrong = wrong_option(text)
    if not wrong:
        return ""
    known = set(known)
    if "." in wrong:  # a dotted key: the closest whole key first (--traner.max_steps -> trainer.max_steps)
        close = difflib.get_close_matches(wrong, known - {wrong}, n=1, cutoff=0.8)
        if close:
            return f"; did you mean '--{close[0]}'?"
    leaf = wrong.rsplit(".", 1)[-1]
    candidates = {k.rsplit(".", 1)[-1] for k in known} | _parameters(text)
    close = difflib.get_close_matches(leaf, candidates - {leaf}, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _key_given_value(text: str, argv: list[str]) -> str | None:
    """The command-line key whose value a message quotes (``Got value: kmean`` -> the option that
    was given ``kmean``), so that a bad value nested under ``model`` is named by its own key."""
    values = [v.strip() for v in re.findall(r"Got value: ([^\n]+)", text)]
    classes = re.findall(r"Given value: .*?class_path='([\w.]+)'", text)  # a source given as a class spec
    for i, arg in enumerate(argv):
        if not arg.startswith("--"):
            continue
        key, _, value = arg.partition("=")
        if not value and i + 1 < len(argv):
            value = argv[i + 1]
        if values and value.strip() == values[-1] or any(c in value for c in classes):
            return key.lstrip("-")
    return None


def one_line(error: BaseException, config: Any = None, known: Iterable[str] = (),
             argv: Iterable[str] = ()) -> str:
    """The message printed for a config error: ``<key>: <reason>``."""
    text = "\n".join(str(link) for link in _chain(error))
    reason = innermost_reason(str(error))
    cls = _raising_class(error)
    key = _key_of_class(config, cls) if cls and config is not None else None
    wrong = wrong_option(text)
    given = [a.split("=", 1)[0].lstrip("-") for a in argv if a.startswith("--")]
    typed = next((a for a in given if wrong and a.rsplit(".", 1)[-1] == wrong.rsplit(".", 1)[-1]), None)
    parser_key = re.findall(r'Parser key "([^"]+)"', text)
    where = typed or key or _key_given_value(text, list(argv)) or (parser_key[0] if parser_key else None)
    if where is None and cls in SECTIONS:  # a plain config section's class (not a class_path entry)
        where = SECTIONS[cls]
    named = re.match(r"([a-z_]+) (must|should)\b", reason)
    if where in SECTIONS.values() and named:  # data: batch_size must ... -> data.batch_size: ...
        where = f"{where}.{named.group(1)}"
    hint = unknown_option_hint(text, known)
    line = f"{where}: {reason}" if where and not reason.startswith(where) else reason
    return line + hint

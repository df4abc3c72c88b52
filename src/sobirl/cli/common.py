"""What every command of ``sobirl`` shares: the one way a command fails on bad input (:func:`reported`: exit status 2
and ``sobirl COMMAND: error: MESSAGE``), the output options, and ``KEY=VALUE`` parsing."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import yaml
from gymnasium import error as gym_error

from sobirl.experiments import create_run_dir

PROG = "sobirl"

EXPECTED: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError)
"""What bad input raises: a command reports these as its error line."""
RUN_EXPECTED = (gym_error.DependencyNotInstalled, ValueError, TypeError, OSError, yaml.YAMLError)
"""What a bad rlhf config raises, a missing extra included (``make_env``'s message names the command that
installs it)."""


class CommandError(Exception):
    """A failure a command reports as its error line (:func:`reported`), its message as it stands."""


def fail(parser: argparse.ArgumentParser, message: str, *, usage: bool = False) -> NoReturn:
    """Exit with status 2 after writing ``PROG COMMAND: error: MESSAGE`` to stderr, preceded by the command's usage
    where ``usage``."""
    if usage:
        parser.error(message)
    parser.exit(2, f"{parser.prog}: error: {message}\n")


@contextlib.contextmanager
def reported(
    parser: argparse.ArgumentParser,
    expected: tuple[type[BaseException], ...] = EXPECTED,
    *,
    usage: bool = False,
    text: Callable[[BaseException], str] = str,
) -> Iterator[None]:
    """The error funnel of every command: a :class:`CommandError` or an ``expected`` exception raised in the block
    exits through :func:`fail` (status 2, one error line: the message as ``text`` writes it; after the usage where
    ``usage``); anything else propagates."""
    try:
        yield
    except CommandError as err:
        fail(parser, str(err), usage=usage)
    except expected as err:
        fail(parser, text(err), usage=usage)


def joined_lines(err: BaseException) -> str:
    """The message with its line breaks as spaces."""
    return str(err).replace("\n", " ")


def squeezed(err: BaseException) -> str:
    """The message with every run of white space as one space."""
    return " ".join(str(err).split())


def add_output_options(
    target: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    name_help: str,
    name_default: Any = None,
    root_help: str = "root of the run directories",
    progress: bool = False,
) -> None:
    """Add ``--output-dir`` (default ``runs``), ``--name`` and, where ``progress``, ``--no-progress``."""
    target.add_argument("--output-dir", type=Path, default=Path("runs"), help=root_help)
    target.add_argument("--name", default=name_default, help=name_help)
    if progress:
        target.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def new_run_dir(output_dir: str | os.PathLike[str], name: str) -> Path:
    """:func:`~sobirl.rundir.create_run_dir`, a directory that cannot be made as a :class:`CommandError`.

    Raises:
        ValueError: ``name`` is not a single path component.
        CommandError: the directory cannot be created.
    """
    try:
        return create_run_dir(output_dir, name)
    except OSError as err:
        raise CommandError(f"cannot create a run directory in {output_dir}: {err}") from err


def key_values(items: list[str], option: str) -> dict[str, Any]:
    """``KEY=VALUE`` items (of ``option``, named in the error) as a dict; values parsed as numbers, else YAML.

    Raises:
        ValueError: an item without ``=`` or with an empty key.
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} expects KEY=VALUE, got {item!r}")
        out[key] = parse_value(value)
    return out


def grid_values(items: list[str], option: str) -> dict[str, list[Any]]:
    """``KEY=V1,V2,...`` items (of ``option``, named in the error) as ``{key: [values]}``, keys in the given order;
    each value parsed as by ``--set`` (numbers, else YAML), split at the commas outside brackets and quotes, so a
    list value stays whole: ``reward_hidden=[64, 64],[32]``.

    Raises:
        ValueError: an item without ``=``, with an empty key, an empty value, unbalanced brackets or quotes, or a key
            given twice.
    """
    out: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{option} expects KEY=VALUE1,VALUE2,..., got {item!r}")
        if key in out:
            raise ValueError(f"{option} {key} is given twice; list all its values in one {option} {key}=V1,V2,...")
        parts = _split_top_level(text, f"{option} {key}")
        if any(not part.strip() for part in parts):
            raise ValueError(f"{option} {key} has an empty value in {text!r}; expected {key}=VALUE1,VALUE2,...")
        out[key] = [parse_value(part.strip()) for part in parts]
    return out


def _split_top_level(text: str, what: str) -> list[str]:
    """``text`` split at the commas that are outside brackets (``[]``, ``{}``) and quotes.

    Raises:
        ValueError: unbalanced brackets or an unclosed quote, naming ``what``.
    """
    parts, current, depth, quote = [], [], 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"{what}: unbalanced brackets in {text!r}")
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if depth or quote:
        raise ValueError(f"{what}: unbalanced brackets or quotes in {text!r}")
    return [*parts, "".join(current)]


def parse_value(text: str) -> Any:
    """A number when the text is one (YAML 1.1 reads ``1e4`` as a string), else YAML (``true``, ``[1, 2]``)."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return yaml.safe_load(text)

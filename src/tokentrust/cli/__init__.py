"""The ``tokentrust`` command line. User errors print one line and exit 2, never a traceback.

Each command group lives in its own module (``ask``, ``bench``, ``explain``, ``serve``, ``verify``) with a ``register(app)``;
shared option types are in :mod:`.options`. Heavy libraries are imported inside the commands, so
``tokentrust --help`` stays fast and imports neither torch nor scikit-learn.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated as Arg

import typer
from rich.console import Console

from ..errors import TokentrustError

app = typer.Typer(
    help="How far to trust each token and answer a language model writes.\n\n"
    "Runs the embedded SmolLM2-135M-Instruct unless --model names another model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

_COMMAND_MODULES: tuple[str, ...] = ("ask", "bench", "explain", "serve", "verify", "cascade", "transfer")


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        sys.stdout.write(f"tokentrust {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Arg[bool, typer.Option("--version", callback=_version, is_eager=True,
                                    help="Print the version and exit.")] = False,
) -> None:
    """How far to trust each token and answer a language model writes."""


def _environment() -> None:
    """Defaults for the libraries the commands load (a variable the user set always wins).

    ``OMP_WAIT_POLICY=PASSIVE``: torch's idle OpenMP threads sleep instead of spinning; on a machine shared
    with other work, spinning threads made generation about 10 times slower. Must be set before torch loads.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


for _name in _COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:
    """Entry point: run the app; turn tokentrust's user errors into one clear line and exit code 2."""
    _environment()
    try:
        app()
    except TokentrustError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()

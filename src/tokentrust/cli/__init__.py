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
from typing import Any

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

_COMMAND_MODULES: tuple[str, ...] = ("ask", "catalogue", "bench", "explain", "serve", "verify", "cascade", "transfer", "judge", "bytes", "extract", "selfcorrect", "critical")


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        sys.stdout.write(f"tokentrust {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Arg[bool, typer.Option("--version", callback=_version, is_eager=True,
                                    help="Print the version and exit.")] = False,
    verbose: Arg[bool, typer.Option("--verbose", help="Let the libraries underneath print their own progress "
                                    "bars and warnings (model loading, downloads).")] = False,
) -> None:
    """How far to trust each token and answer a language model writes."""
    _environment(verbose)


def _environment(verbose: bool = False) -> None:
    """Defaults for the libraries the commands load (a variable the user set always wins); runs before any
    command, so before torch or transformers are imported.

    ``OMP_WAIT_POLICY=PASSIVE``: torch's idle OpenMP threads sleep instead of spinning; on a machine shared
    with other work, spinning threads made generation about 10 times slower. Unless ``--verbose``: no
    progress bars or info messages from transformers and the hub (``TOKENTRUST_VERBOSE`` tells the backends).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if verbose:
        os.environ["TOKENTRUST_VERBOSE"] = "1"
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "warning")
    else:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _no_type_for_flags() -> None:
    """Show no value type next to on/off flags in ``--help`` (recent typer prints ``--json <bool>``, which reads
    as if the flag took a value); options that take a value keep theirs."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "hides_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.hides_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_no_type_for_flags()
for _name in _COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:
    """Entry point: run the app; turn tokentrust's user errors into one clear line and exit code 2."""
    try:
        app()
    except TokentrustError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)  # one line, however long
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()

"""The command line run in this test process (no import cost per call)."""

from __future__ import annotations

import sys


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``tokentrust *args`` through its entry point: ``(exit code, stdout, stderr)``."""
    from tokentrust.cli import main

    argv, sys.argv = sys.argv, ["tokentrust", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err

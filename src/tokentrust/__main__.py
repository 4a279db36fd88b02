"""``python -m tokentrust`` runs the CLI."""

from .cli import main

main()

"""``python -m costmodel`` runs the CLI."""

from costmodel.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

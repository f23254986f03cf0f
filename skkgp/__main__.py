"""``python -m skkgp`` runs the command line (see :mod:`skkgp.cli`)."""

from skkgp.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

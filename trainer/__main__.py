"""``python -m trainer``: the command line (see ``trainer.cli``)."""

from trainer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

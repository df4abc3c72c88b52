"""``python -m sobirl``: the same as the ``sobirl`` command."""

from sobirl.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Command line: ``python -m approxmat demo`` and ``python -m approxmat show-config``."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    """Entry point of ``python -m approxmat`` (and the ``approxmat`` script)."""
    parser = argparse.ArgumentParser(
        prog="python -m approxmat", description="approxmat: approximate matrix products"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="fit on a dataset, then compare speed and error against NumPy"
    )
    from ._demo import add_arguments

    add_arguments(demo)
    commands.add_parser("show-config", help="print build and runtime facts")
    args = parser.parse_args(argv)

    if args.command == "show-config":
        from ._show import show_config

        show_config()
        return 0
    from ._demo import run_from_args

    return run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())

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
    demo.add_argument("--threads", type=int, default=None, help="kernel threads")
    demo.add_argument("--repeat", type=int, default=7, help="timing repetitions (median)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the fit's split")
    commands.add_parser("show-config", help="print build and runtime facts")
    args = parser.parse_args(argv)

    if args.command == "show-config":
        from ._show import show_config

        show_config()
        return 0
    from ._demo import run_demo

    return run_demo(threads=args.threads, repeat=args.repeat, seed=args.seed)


if __name__ == "__main__":
    sys.exit(main())

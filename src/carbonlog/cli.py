"""The `carbonlog` command: one entry point, a subcommand per task."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from carbonlog.demo import run

    options = {"location": args.location, "ledger": not args.no_ledger}
    run(epochs=args.epochs, framework=args.framework, **options)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carbonlog", description="Energy and CO2 of machine-learning training."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="train a small model with carbonlog and print energy and CO2 per epoch"
    )
    demo.add_argument("--epochs", type=int, default=5, help="epochs to train (default 5)")
    demo.add_argument(
        "--framework",
        choices=("auto", "lightning", "torch"),
        default="auto",
        help="Lightning when installed (auto), or a plain PyTorch loop",
    )
    demo.add_argument(
        "--location",
        default=None,
        help="where the energy is drawn: FR, US-CA, gcp:us-central1 ... "
        "(default: $CARBONLOG_LOCATION, else the world average)",
    )
    demo.add_argument("--no-ledger", action="store_true", help="do not record the run")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, LookupError) as exc:
        print(f"carbonlog: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

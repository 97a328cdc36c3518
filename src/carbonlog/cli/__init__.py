"""The `carbonlog` command: one entry point, a subcommand per task.

    carbonlog estimate --hardware "A100 SXM4 80 GB" --count 8 --hours 24 --location gcp:us-central1
    carbonlog runs --task sst2          carbonlog runs show 12
    carbonlog compare 12 15 --target "val_accuracy>=0.9"
    carbonlog report 12 --out report/   carbonlog statement 12 --format latex
    carbonlog when --location GB --hours 6 --forecast forecast.json

Every command takes --help; those that print data take --json. The ledger is
$CARBONLOG_HOME/ledger.sqlite3 (or the user's data directory), or --ledger PATH.
Exit codes: 0 done, 1 a failure to act on (no such run, no ledger, a missing extra),
2 bad arguments, 130 interrupted. Tables fit the terminal (80 columns when piped);
progress goes to stderr, results to stdout. parser.py binds each subcommand to its
command (commands.py, returns data) and its view (views.py, renders it through report/).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from carbonlog.cli.commands import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, CommandError
from carbonlog.cli.parser import build_parser
from carbonlog.errors import CarbonlogError
from carbonlog.report.text import terminal_safe

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. Only carbonlog's own errors become a one-line message;
    anything else is a bug and keeps its traceback."""
    from carbonlog.ledger import LedgerError

    args = build_parser().parse_args(argv)  # argparse's usage errors exit 2 here
    try:
        args.render(args.act(args), args)
        return 0
    except CommandError as exc:
        code, message = exc.code, str(exc)
    except LedgerError as exc:  # the ledger cannot be read or written: nothing to fix in the call
        code, message = EXIT_FAILURE, str(exc)
    except CarbonlogError as exc:  # a bad location, option or argument
        code, message = EXIT_USAGE, str(exc)
    except BrokenPipeError:  # `carbonlog regions | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a folder that cannot be written, a disk that is full
        code, message = EXIT_FAILURE, str(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    print(f"carbonlog: error: {terminal_safe(message)}", file=sys.stderr)
    return code

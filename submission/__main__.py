"""``python -m submission check|pack``: pre-flight a submission as the grader runs it; prepare the upload.

    python -m submission check [--repo DIR] [--data-dir DIR] [--time-limit S | --time-limit-factor F]
                               [--setup-timeout S] [--format mdx21|sdx23] [--json]
    python -m submission pack  [--repo DIR] [--format mdx21|sdx23] [--version V] [--dry-run] [--json]

See docs/upload.md for the upload procedure step by step.
"""

from __future__ import annotations

import argparse
import sys

from submission import check, pack


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m submission",
                                     description="Pre-flight check and upload preparation of a submission.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{check,pack}")
    check.add_arguments(commands.add_parser(
        "check", help="run predict.py as the grader does and check everything it needs",
        description=(check.__doc__ or "").split("\n\n")[0]))
    pack.add_arguments(commands.add_parser(
        "pack", help="write .gitattributes (lfs), propose a tag, list what would be pushed (never pushes)",
        description=(pack.__doc__ or "").split("\n\n")[0]))
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return check.main(args) if args.command == "check" else pack.main(args)


if __name__ == "__main__":
    sys.exit(main())

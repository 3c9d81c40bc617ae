#!/usr/bin/env python3
"""Write docs/cli.md from the commands' own --help (so the reference never drifts from the code).

    .venv/bin/python scripts/cli_reference.py            # rewrite docs/cli.md
    .venv/bin/python scripts/cli_reference.py --check    # exit 1 if docs/cli.md is out of date
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal width: fix it
    from styleavatar.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = ["# Command-line reference", "", "Generated from `styleavatar COMMAND --help` by "
             "`scripts/cli_reference.py`; do not edit by hand.", "", "```", parser.format_help().rstrip(), "```", ""]
    for name, p in sub.choices.items():
        parts += [f"## styleavatar {name}", "", "```", p.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    path = ROOT / "docs" / "cli.md"
    text = render()
    if args.check:
        sys.exit(0 if path.exists() and path.read_text() == text else 1)
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

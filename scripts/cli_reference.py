#!/usr/bin/env python3
"""Write docs/cli.md from the commands' own --help (so the reference never drifts from the code).

    .venv/bin/python scripts/cli_reference.py            # rewrite docs/cli.md
    .venv/bin/python scripts/cli_reference.py --check    # exit 1 if docs/cli.md is out of date

argparse lays out --help differently from one Python version to the next (3.13 writes ``-o, --output
OUTPUT`` where 3.11 writes ``-o OUTPUT, --output OUTPUT``). The file records the version that wrote it;
``--check`` on that version compares the text exactly, on another it compares the commands and options.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal width: fix it
    from styleavatar.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = ["# Command-line reference", "", "Generated from `styleavatar COMMAND --help` by "
             f"`scripts/cli_reference.py` (Python {_python()}); do not edit by hand.", "", "```",
             parser.format_help().rstrip(), "```", ""]
    for name, p in sub.choices.items():
        parts += [f"## styleavatar {name}", "", "```", p.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def _python() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def _vocabulary(text: str) -> tuple[set[str], set[str]]:
    """The commands (section titles) and the long options a reference mentions."""
    return set(re.findall(r"^## styleavatar (\S+)", text, re.M)), set(re.findall(r"--[a-z0-9][a-z0-9-]*", text))


def up_to_date(old: str, new: str) -> bool:
    """Exactly equal when written by this Python version, else the same commands and options."""
    if f"(Python {_python()})" in old:
        return old == new
    return _vocabulary(old) == _vocabulary(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    path = ROOT / "docs" / "cli.md"
    text = render()
    if args.check:
        sys.exit(0 if path.exists() and up_to_date(path.read_text(), text) else 1)
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

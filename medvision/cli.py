"""The ``medvision`` command line. Sub-commands: ``book`` (run and build the book), ``data`` (inspect a data set)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _data_inspect(args: argparse.Namespace) -> int:
    from medvision.data import (
        DataConfig,
        DataError,
        DataNotFoundError,
        leakage_report,
        load_data,
        summarize_leakage,
    )

    cfg = DataConfig(source=args.source, name=args.name, size=args.size, data_root=args.data_root or "",
                     path_col=args.path_col, label_col=args.label_col, group_col=args.group_col or "")
    try:
        table = load_data(cfg)
    except (DataError, DataNotFoundError) as exc:
        print(f"medvision data: {exc}", file=sys.stderr)
        return 2
    print(table.summary())
    print(table.counts().to_string())
    if args.leakage:
        print(summarize_leakage(leakage_report(table, progress=True)).to_string())
    return 0


def _data_fetch(args: argparse.Namespace) -> int:
    from medvision.systems import fetch_system, load_system

    try:
        target = fetch_system(load_system(args.name, data_root=args.data_root))
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"medvision data fetch: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name}: data ready at {target}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medvision", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("book", help="execute the notebooks of a profile and build the HTML book",
                   add_help=False)
    data = sub.add_parser("data", help="data sets").add_subparsers(dest="action", required=True)
    inspect = data.add_parser("inspect", help="class counts per split (and a leakage summary)")
    inspect.add_argument("name", help="MedMNIST flag, or folder / CSV path under the data root")
    inspect.add_argument("--source", choices=["medmnist", "folder", "csv"], default="medmnist")
    inspect.add_argument("--size", type=int, default=28)
    inspect.add_argument("--data-root", default="")
    inspect.add_argument("--path-col", default="path")
    inspect.add_argument("--label-col", default="label")
    inspect.add_argument("--group-col", default="")
    inspect.add_argument("--leakage", action="store_true", help="also hash images for duplicates")
    fetch = data.add_parser("fetch", help="download a seed system's data with kagglehub, or say where to put it")
    fetch.add_argument("name", help="a configs/*.yaml system (chest_xray_pneumonia, ham10000, ...)")
    fetch.add_argument("--data-root", default="")
    args, rest = parser.parse_known_args(argv)
    if args.command == "book":
        from medvision.book import main as book_main

        return book_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.action == "fetch":
        return _data_fetch(args)
    return _data_inspect(args)


if __name__ == "__main__":
    sys.exit(main())

"""Command-line tools over a data folder: `deep-painting fsck` (and `gc_main`, for a `gc` subcommand).

A data folder holds `images/` (the image store) and `catalog.sqlite3` (the catalog) unless
`--database-url` names another database. Both tools refuse a folder that does not exist rather than
creating an empty one, so a typo cannot look like a clean check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from painting.catalog import CATALOG_FILENAME, Catalog
from painting.errors import CatalogError
from painting.fsck import DEFAULT_GRACE_S, fsck, gc
from painting.images import ImageStore

IMAGES_DIRNAME = "images"


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data"),
        help="the data folder (default: ./data): images in DATA_DIR/images, SQLite in DATA_DIR/" + CATALOG_FILENAME,
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="a sqlite:// or postgresql:// URL to use instead of DATA_DIR/" + CATALOG_FILENAME,
    )
    parser.add_argument("--images", type=Path, default=None, help="the image folder, if not DATA_DIR/images")
    return parser


def _open(args: argparse.Namespace, prog: str) -> tuple[Catalog, ImageStore] | None:
    images = args.images or args.data_dir / IMAGES_DIRNAME
    if args.database_url is None and not (args.data_dir / CATALOG_FILENAME).is_file():
        print(f"{prog}: no painting database at {args.data_dir / CATALOG_FILENAME}", file=sys.stderr)
        return None
    if not images.is_dir():
        print(f"{prog}: no image folder at {images}", file=sys.stderr)
        return None
    try:
        # migrate=False: a check must not change the database; it only needs the newest schema.
        catalog = Catalog.open(args.database_url, args.data_dir, migrate=False)
    except CatalogError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None
    return catalog, ImageStore(images)


def fsck_main(argv: list[str]) -> int:
    """`deep-painting fsck`: exit 0 when every record's images are there and intact, 1 if not."""
    prog = "deep-painting fsck"
    parser = _parser(prog, "Check that every stored painting's images exist and hash to their ids.")
    parser.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    args = parser.parse_args(argv)
    opened = _open(args, prog)
    if opened is None:
        return 2
    catalog, store = opened
    with catalog:
        report = fsck(catalog, store)
    for problem in report.problems:
        print(problem.message)
    if not args.quiet or report.problems:
        verdict = "OK" if report.ok else f"{len(report.problems)} problem(s)"
        print(
            f"{prog}: {verdict}: checked {report.paintings} painting(s) and {report.images} image(s); "
            f"{report.unreferenced} stored image(s) unreferenced",
            file=sys.stderr,
        )
    return 0 if report.ok else 1


def gc_main(argv: list[str]) -> int:
    """`deep-painting gc`: remove images no painting refers to any more."""
    prog = "deep-painting gc"
    parser = _parser(prog, "Remove stored images that no painting refers to any more.")
    parser.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_S,
        metavar="SECONDS",
        help=f"keep images stored within this many seconds (default {DEFAULT_GRACE_S:.0f})",
    )
    parser.add_argument("-n", "--dry-run", action="store_true", help="only say what would be removed")
    args = parser.parse_args(argv)
    opened = _open(args, prog)
    if opened is None:
        return 2
    catalog, store = opened
    with catalog:
        report = gc(store, catalog, grace_s=args.grace, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(
        f"{prog}: {verb} {len(report.removed)} image(s) and {report.temp_removed} temp file(s); "
        f"kept {report.too_recent} recent unreferenced image(s)",
        file=sys.stderr,
    )
    return 0


__all__ = ["fsck_main", "gc_main"]

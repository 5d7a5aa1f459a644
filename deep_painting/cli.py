"""`deep-painting SUBCOMMAND ...`: imports a subcommand's package only when that subcommand runs.

`paint` never loads FastAPI and the services never load TensorFlow, so each entry below names the
module that owns the subcommand as a string; it is imported on use. Each target is a function
`main(argv: list[str]) -> int` that parses its own arguments.
"""

from __future__ import annotations

import importlib
import sys

# name -> ("module:function", one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("deep_painting.serve:main", "run Gallery and Studio together on this host (the web app)"),
    "paint": ("pycasso.cli:main", "paint one picture from the command line"),
    "example": ("pycasso.examples:main", "write a generated content/style example pair to a folder"),
    "fsck": ("painting.cli:fsck_main", "check that every stored painting's images exist and are intact"),
    "gc": ("painting.cli:gc_main", "delete stored images that no painting references any more"),
    "studio": ("studio.cli:main", "run the Studio service (beside the GPU)"),
    "gallery": ("gallery.cli:main", "run the Gallery service (the web app people use)"),
}


def _usage() -> str:
    lines = ["usage: deep-painting SUBCOMMAND [ARGS ...]", "", "subcommands:"]
    width = max(len(name) for name in SUBCOMMANDS)
    for name, (_, help_text) in SUBCOMMANDS.items():
        lines.append(f"  {name.ljust(width)}  {help_text}")
    lines.append("")
    lines.append("Run `deep-painting SUBCOMMAND --help` for a subcommand's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"deep-painting: unknown subcommand {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function_name = SUBCOMMANDS[name][0].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    return int(function(rest) or 0)


__all__ = ["SUBCOMMANDS", "main"]

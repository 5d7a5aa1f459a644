"""The package rules of DESIGN.md, checked on the source: who may import whom, and through which face.

Each package's modules say what others may use in their `__all__`; code outside a package imports
only those names. The rules are read from the import statements (ast), so a lazy import inside a
function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("painting", "pycasso", "studio", "gallery", "httpapi", "deep_painting")
# What each package may import of ours (its own modules always). `deep_painting` is the command
# dispatcher: it starts every service, so it may import them all (each only when its command runs).
ALLOWED: dict[str, set[str]] = {
    "painting": set(),
    "pycasso": {"painting.params", "painting.images", "painting.errors", "painting.progress", "painting.estimate"},
    "httpapi": {"painting.errors", "painting.images"},
    "studio": {"painting.*", "pycasso.port", "httpapi.*"},
    "gallery": {"painting.*", "httpapi.*"},
    "deep_painting": {"painting.*", "pycasso.*", "studio.*", "gallery.*", "httpapi.*"},
}


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for each `from module import names` and `import module` in a file."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


def ours(module: str) -> bool:
    return module.split(".")[0] in PACKAGES


def source_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts)


def allowed(importer: str, module: str) -> bool:
    if module.split(".")[0] == importer:
        return True
    return any(module == rule or (rule.endswith(".*") and module.startswith(rule[:-1])) for rule in ALLOWED[importer])


def is_module(dotted: str) -> bool:
    """Whether `dotted` names one of our modules or packages (not a name inside one)."""
    path = ROOT / dotted.replace(".", "/")
    return path.with_suffix(".py").is_file() or path.is_dir()


def targets(module: str, names: list[str]) -> list[str]:
    """The modules an import statement reaches: `from pycasso import port` reaches pycasso.port."""
    submodules = [f"{module}.{n}" for n in names if is_module(f"{module}.{n}")]
    return submodules + ([module] if len(submodules) < len(names) or not names else [])


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_what_the_design_allows(package):
    wrong = [
        f"{path.relative_to(ROOT)}: {target}"
        for path in source_files(package)
        for module, names in imports(path)
        for target in targets(module, names)
        if ours(target) and not allowed(package, target)
    ]
    assert wrong == []


def public_names(module: str) -> list[str] | None:
    """The names in a module's literal `__all__`, read without importing it (no TensorFlow here)."""
    for node in ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return None


def test_code_outside_a_package_imports_only_its_public_names():
    """`from painting.catalog import X` from anywhere but `painting` itself: X is in painting.catalog.__all__."""
    wrong = []
    for path in source_files(*PACKAGES, "tests", "bench"):
        where = path.relative_to(ROOT).parts[0]
        for module, names in imports(path):
            if not ours(module) or module.split(".")[0] == where or "." not in module:
                continue  # another library, the package's own module, or a package (whose face is its modules)
            public = public_names(module)
            if public is None:
                wrong.append(f"{path.relative_to(ROOT)}: {module} has no __all__")
                continue
            wrong += [f"{path.relative_to(ROOT)}: {module}.{n}" for n in names if n not in public]
    assert wrong == []


def test_gallery_and_studio_share_their_http_plumbing_instead_of_copying_it():
    for package in ("gallery", "studio"):
        text = "\n".join(p.read_text() for p in source_files(package))
        for copied in (
            "class BodyLimit",
            "class _BodyLimit",
            "class BadRequest",
            "class BodyTooLarge",
            "def _file_part",
        ):
            assert copied not in text, f"{package} defines {copied!r} again: use httpapi"

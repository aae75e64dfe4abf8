"""Dependencies run one way: errors/files/options/plots <- nn, data <- models <- analysis <- train <- explain
<- experiments <- cli. A lower layer never imports a higher one (lazy imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

import cnnlab

PACKAGE = Path(cnnlab.__file__).parent

# (layer name, the modules in it), from the bottom up.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("cnnlab.errors", "cnnlab.files", "cnnlab.options", "cnnlab.plots")),
    ("nn, data", ("cnnlab.nn", "cnnlab.data")),
    ("models", ("cnnlab.models",)),
    ("analysis", ("cnnlab.analysis",)),
    ("train", ("cnnlab.train",)),
    ("explain", ("cnnlab.explain",)),
    ("experiments", ("cnnlab.experiments",)),
    ("cli", ("cnnlab.cli", "cnnlab.__main__")),  # one layer: __main__ only calls cli.main
)


def layer_of(module: str) -> tuple[int, str] | None:
    """(rank, owning package) of a cnnlab module; None for the ``cnnlab`` facade and outside modules."""
    for rank, (_, owners) in enumerate(LAYERS):
        for owner in owners:
            if module == owner or module.startswith(owner + "."):
                return rank, owner
    return None


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, importer: str, is_package: bool, root: Path) -> set[str]:
    """Every module named by an import statement anywhere in ``tree`` (relative imports resolved)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = importer.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            if base != "cnnlab":
                found.add(base)
                continue
            for alias in node.names:  # `from cnnlab import nn` names the submodule cnnlab.nn
                is_module = (root / alias.name).is_dir() or (root / f"{alias.name}.py").is_file()
                found.add(f"cnnlab.{alias.name}" if is_module else "cnnlab")
    return {m for m in found if m == "cnnlab" or m.startswith("cnnlab.")}


def violations(root: Path = PACKAGE) -> list[str]:
    """One line per import that goes up (or sideways between packages of one layer), naming both layers."""
    found = []
    for path in sorted(root.rglob("*.py")):
        importer = module_name(path, root)
        own = layer_of(importer)
        if own is None:
            continue  # the cnnlab facade (__init__) re-exports; it is not a layer
        tree = ast.parse(path.read_text(), filename=str(path))
        for target in sorted(imported_modules(tree, importer, path.name == "__init__.py", root)):
            other = layer_of(target)
            if other is None:
                if target == "cnnlab" and own[0] < len(LAYERS) - 1:
                    found.append(f"{importer} ({LAYERS[own[0]][0]}) imports the cnnlab facade; import the module")
                continue
            upward = other[0] > own[0]
            sideways = other[0] == own[0] and other[1] != own[1] and 0 < own[0] < len(LAYERS) - 1
            if upward or sideways:
                found.append(f"{importer} ({LAYERS[own[0]][0]}) imports {target} ({LAYERS[other[0]][0]})")
    return found


def test_no_layer_imports_a_higher_one():
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path):
    pkg = tmp_path / "cnnlab"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("")
    lazy = "def f():\n    from cnnlab.train import loop\n    from ..experiments import x\n"
    (pkg / "models" / "bad.py").write_text(lazy)
    assert violations(pkg) == ["cnnlab.models.bad (models) imports cnnlab.experiments (experiments)",
                     "cnnlab.models.bad (models) imports cnnlab.train (train)"]

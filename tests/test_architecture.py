"""Architecture rules the import contracts (pyproject.toml, `lint-imports`) cannot express.

No module imports a private name (`_x`) or a private module (`_x.py`) from another package; lazy
imports inside functions count. A package's private names are its own business: reaching into them
from outside couples two packages through code neither promised to keep.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"


@dataclass(frozen=True, order=True)
class PrivateImport:
    """`where` (file:line) imports `name`, private to `owner`."""

    where: str
    name: str
    owner: str

    def __str__(self) -> str:
        return f"{self.where} → {self.name} (private to {self.owner})"


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _module_name(path: Path, src: Path) -> tuple[str, bool]:
    """The dotted name of a source file, and whether it is a package (`__init__.py`)."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _owner(container: str, src: Path, root: str) -> str:
    """The package whose private names `container` (a module or package) holds: a package owns its
    own; a module's belong to its package, except at the top, where a module (`tunewise.config`,
    `tunewise.cv`) is a unit of its own."""
    if (src / container.replace(".", "/") / "__init__.py").is_file():
        return container
    parent = container.rpartition(".")[0]
    return container if parent == root else parent


def _inside(importer: str, owner: str) -> bool:
    return importer == owner or importer.startswith(owner + ".")


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _private_target(dotted: str, src: Path, root: str) -> tuple[str, str] | None:
    """(the import up to its first private part, the package that owns it), or None."""
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if _private(part):
            return ".".join(parts[: i + 1]), _owner(".".join(parts[:i]), src, root)
    return None


def private_imports(src: Path, root: str = "tunewise") -> list[PrivateImport]:
    """Every import, anywhere in a module (functions and `if TYPE_CHECKING:` included), of a private
    name or module of another package, in the package `root` under `src`."""
    found: set[PrivateImport] = set()
    for path in sorted((src / root).rglob("*.py")):
        importer, is_package = _module_name(path, src)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, importer, is_package)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            where = f"{path.relative_to(src.parent)}:{getattr(node, 'lineno', 0)}"
            for target in targets:
                if target != root and not target.startswith(root + "."):
                    continue
                hit = _private_target(target, src, root)
                if hit is not None and not _inside(importer, hit[1]):
                    found.add(PrivateImport(where, hit[0], hit[1]))
    return sorted(found)


def test_no_module_imports_a_private_name_of_another_package() -> None:
    found = private_imports(SRC)
    assert not found, f"{len(found)} imports of another package's private names:\n" + "\n".join(map(str, found))


def test_the_check_finds_planted_private_imports(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "from pkg.core import _version\n",  # the root reaching into a package: counted
        "pkg/config.py": "def _describe(): ...\n",
        "pkg/core/__init__.py": "from pkg.core._impl import helper\n",  # its own private module: fine
        "pkg/core/_impl.py": "def helper(): ...\n_CACHE = {}\n",
        "pkg/core/api.py": "from ._impl import _CACHE\nfrom pkg.core import _impl\n_version = 1\n",  # same package
        "pkg/core/deep/__init__.py": "",
        "pkg/core/deep/leaf.py": "from pkg.core.api import _version\n",  # a subpackage of the owner: fine
        "pkg/other.py": (
            "import pkg.core.api\n"
            "from pkg.core.api import public, _version as v\n"  # line 2: a private name
            "def later():\n"
            "    from pkg.config import _describe\n"  # line 4: lazy, from a top-level module
            "    import pkg.core._impl\n"  # line 5: a private module
            "    from .core import _impl\n"  # line 6: relative, a private module as a name
            "    from pkg.config import __doc__\n"  # dunder names are not private
        ),
        "pkg/config_user.py": "from pkg.config import _describe\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = {(f.where, f.name, f.owner) for f in private_imports(tmp_path, "pkg")}
    src = tmp_path.name
    assert found == {
        (f"{src}/pkg/__init__.py:1", "pkg.core._version", "pkg.core"),
        (f"{src}/pkg/other.py:2", "pkg.core.api._version", "pkg.core"),
        (f"{src}/pkg/other.py:4", "pkg.config._describe", "pkg.config"),
        (f"{src}/pkg/other.py:5", "pkg.core._impl", "pkg.core"),
        (f"{src}/pkg/other.py:6", "pkg.core._impl", "pkg.core"),
        (f"{src}/pkg/config_user.py:1", "pkg.config._describe", "pkg.config"),
    }


def test_the_current_tree_is_scanned() -> None:
    # The scan reads every module; a wrong root or path would find nothing and pass vacuously.
    modules = list((SRC / "tunewise").rglob("*.py"))
    assert len(modules) > 50
    assert any(f.name == "_generation.py" for f in modules)

"""Architecture rules the import contracts (pyproject.toml, `lint-imports`) cannot express.

No module imports a private name (`_x`) or a private module (`_x.py`) from another package; lazy
imports inside functions count. A package's private names are its own business: reaching into them
from outside couples two packages through code neither promised to keep.

Every file and folder name of a run directory is spelled once, in `tunewise.rundir` (`RunDir`'s
constants); everything else reads it from there, so that the writer and the readers cannot drift apart.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from tunewise.rundir import RunDir

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


# --------------------------------------------------------------------------- run-directory names


@dataclass(frozen=True, order=True)
class NameLiteral:
    """`where` (file:line) spells the run-directory name `name` as a string literal."""

    where: str
    name: str

    def __str__(self) -> str:
        return f"{self.where} spells {self.name!r} (use RunDir's constant or property)"


def run_dir_names() -> frozenset[str]:
    """The names RunDir knows: the value of each of its upper-case string constants."""
    return frozenset(v for k, v in vars(RunDir).items() if k.isupper() and isinstance(v, str))


def _docstrings(tree: ast.Module) -> set[int]:
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)))]
    found = set()
    for node in nodes:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            found.add(id(body[0].value))
    # An attribute docstring (a string statement after an assignment) is documentation too.
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue  # a lambda's body is an expression
        for first, second in pairwise(body):
            if (
                isinstance(first, (ast.Assign, ast.AnnAssign))
                and isinstance(second, ast.Expr)
                and isinstance(second.value, ast.Constant)
            ):
                found.add(id(second.value))
    return found


def _path_part(node: ast.Constant, parents: dict[int, ast.AST]) -> bool:
    """Whether `node` is used as a path component: `x / "name"`, `Path("name")`, `p.joinpath("name")`."""
    parent = parents.get(id(node))
    if isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Div):
        return True
    if isinstance(parent, ast.Call) and node in parent.args:
        func = parent.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return called in {"Path", "PurePath", "joinpath"}
    return False


def run_dir_literals(src: Path, root: str, names: Collection[str], owner: str = "rundir.py") -> list[NameLiteral]:
    """Where a module of `root` (other than `owner`) spells one of `names` as a string literal.

    A file name (one with a dot) counts wherever it appears, also at the end of a longer path
    (`f"{d}/report.html"`); a folder name (`plots`, `tensorboard`) is an ordinary word too (a tracker
    kind, a package), so it counts only where it is used as a path component. Docstrings do not count.
    """
    found = []
    for path in sorted((src / root).rglob("*.py")):
        if path.relative_to(src / root).as_posix() == owner:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        parents = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in docs:
                continue
            for name in names:
                spelled = node.value == name or ("." in name and node.value.endswith("/" + name))
                if spelled and ("." in name or _path_part(node, parents)):
                    found.append(NameLiteral(f"{path.relative_to(src.parent).as_posix()}:{node.lineno}", name))
    return sorted(found)


def test_run_dir_names_are_spelled_only_in_rundir() -> None:
    found = run_dir_literals(SRC, "tunewise", run_dir_names())
    assert not found, f"{len(found)} run-directory names spelled outside rundir.py:\n" + "\n".join(map(str, found))


def test_the_name_check_finds_planted_literals(tmp_path: Path) -> None:
    files = {
        "pkg/rundir.py": 'METRICS = "metrics.jsonl"\nPLOTS = "plots"\n',  # the owner: not scanned
        "pkg/reader.py": (
            '"""Reads metrics.jsonl and report.html."""\n'  # a docstring: fine
            'METRICS = "metrics.jsonl"\n'  # line 2: a file name, anywhere
            "def plots(run):\n"
            '    """plots/ beside report.html"""\n'  # a function docstring: fine
            '    return run / "plots"\n'  # line 5: a folder name as a path component
            'KIND = "plots"\n'  # a folder name as a word: fine
            '"""The kind of tracker."""\n'
            "def report(d):\n"
            '    return f"{d}/report.html", Path("plots")\n'  # line 9: both
            'OTHER = "report.htmlx", "my_metrics.jsonl"\n'  # other names: fine
        ),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = {(f.where, f.name) for f in run_dir_literals(tmp_path, "pkg", {"metrics.jsonl", "report.html", "plots"})}
    src = tmp_path.name
    assert found == {
        (f"{src}/pkg/reader.py:2", "metrics.jsonl"),
        (f"{src}/pkg/reader.py:5", "plots"),
        (f"{src}/pkg/reader.py:9", "report.html"),
        (f"{src}/pkg/reader.py:9", "plots"),
    }


def test_run_dir_knows_the_names_the_check_looks_for() -> None:
    # An empty name set would make the check pass vacuously.
    names = run_dir_names()
    assert {"config.yaml", "metrics.jsonl", "train_summary.json", "checkpoints", "plots"} <= names
    assert len(names) > 20

"""The code a pipeline node executes, as content hashes for its cache key.

TFX keys its cache on a node's parameters and inputs. Fairway's Transform and Trainers name their
functions by dotted path (`modules.trainer.run_fn`), and its own components by class path, so
editing the code behind those names changes nothing TFX hashes: the node would stay cached and
the edited code would never run. `digests(...)` follows a node's entry modules through their
imports (static: `import x`, `from x import y`, relative imports, also inside functions) within
Fairway's executable packages and returns {relative path: sha256 prefix} of every source file
reached; pipeline.pipeline puts that map into the node's parameters under `KEY`, so a changed
file re-runs exactly the nodes that import it (and, through their new artifacts, what follows).

Paths are relative to the package's parent (`modules/trainer.py`): the same checkout in another
folder hashes the same; file modification times play no part, and `__pycache__` is never read.
The files hashed are the ones Python imports (the packages are located as the import system
finds them), so a tree first on PYTHONPATH is the one hashed.

Standard library only: `fairway status --cache` reads `KEY` without importing TFX.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import pathlib
from typing import Iterable, Mapping

KEY = "code_hash"
# The packages whose code pipeline nodes execute: pipeline and what it may import (the import
# contract's lower layers, pyproject.toml). Imports of anything else are the environment's.
PACKAGES = ("modules", "pipeline", "serving")
DIGEST_CHARS = 16  # of the sha256 hex digest: 64 bits, per file


def package_dirs(packages: Iterable[str] = PACKAGES) -> dict[str, pathlib.Path]:
    """Top-level package -> its directory, where `import` would load it from (not importing
    it)."""
    out = {}
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            out[name] = pathlib.Path(list(spec.submodule_search_locations)[0])
    return out


class _Tree:
    def __init__(self, roots: Mapping[str, pathlib.Path]):
        self.roots = {k: pathlib.Path(v) for k, v in roots.items()}

    def file(self, module: str) -> pathlib.Path | None:
        """The source file of a dotted module of one of the packages, or None."""
        top, *rest = module.split(".")
        if top not in self.roots:
            return None
        base = self.roots[top].joinpath(*rest)
        for candidate in (base / "__init__.py", base.with_suffix(".py") if rest else None):
            if candidate is not None and candidate.is_file():
                return candidate
        return None

    def rel(self, module: str, path: pathlib.Path) -> str:
        top = module.split(".")[0]
        return f"{top}/{path.relative_to(self.roots[top]).as_posix()}"

    def imports(self, module: str, path: pathlib.Path) -> set[str]:
        """Modules `module` (at `path`) may import: every import statement in the file, each
        as the longest dotted name that is a module (`from a import b` is `a.b` when b is a
        submodule, else `a`)."""
        is_package = path.name == "__init__.py"
        package = module if is_package else module.rpartition(".")[0]
        out = set()
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            if isinstance(node, ast.Import):
                out.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    parts = parts[:len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                out.add(base)
                out.update(f"{base}.{alias.name}" for alias in node.names)
        return {m for m in out if m and self.file(m) is not None}

    def closure(self, entries: Iterable[str]) -> dict[str, pathlib.Path]:
        """Relative path -> file of each entry module, its parent packages and everything
        they import within the packages, transitively."""
        seen: dict[str, pathlib.Path] = {}
        todo = list(entries)
        while todo:
            module = todo.pop()
            path = self.file(module)
            if path is None:
                raise LookupError(f"code hash: no source for module {module!r} under "
                                  f"{sorted(self.roots)}")
            rel = self.rel(module, path)
            if rel in seen:
                continue
            seen[rel] = path
            parts = module.split(".")
            todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # __init__.py's
            todo.extend(self.imports(module, path))
        return seen


def digests(*entries: str, shallow: Iterable[str] = (),
            roots: Mapping[str, pathlib.Path] | None = None) -> dict[str, str]:
    """{relative path: sha256 prefix} of the source files the `entries` modules execute (their
    import closure within `roots`: package name -> directory, default `package_dirs()`), plus
    the `shallow` modules' own files (e.g. the module that declares a component and delegates
    to an entry: its other imports are not this node's code). Sorted by path."""
    tree = _Tree(package_dirs() if roots is None else roots)
    files = tree.closure(entries)
    for module in shallow:
        path = tree.file(module)
        if path is None:
            raise LookupError(f"code hash: no source for module {module!r}")
        files[tree.rel(module, path)] = path
    return {rel: hashlib.sha256(files[rel].read_bytes()).hexdigest()[:DIGEST_CHARS]
            for rel in sorted(files)}


def as_text(code: Mapping[str, str]) -> str:
    """A digests() map as the string parameter of a component (stable: sorted keys)."""
    return json.dumps(dict(code), sort_keys=True, separators=(",", ":"))


def changed_files(before: Mapping[str, str] | None, after: Mapping[str, str]) -> list[str]:
    """The files whose digest differs (added or removed included), sorted."""
    before = before or {}
    return sorted(k for k in {*before, *after} if before.get(k) != after.get(k))

"""sioctl's source scanned for what it uses of the contract's libraries, for the completeness
tests of the library contract (tests/contract/test_library_contract.py): private names, methods its
classes override, attributes its subclasses use, mixins. The parts that import the libraries
run in the child interpreter of tests/support/contract_checks.py.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sioctl.worker import library_contract as contract
from sioctl.worker.library_contract import HOOKS
from tests.support.contract_layouts import instance_of, resolve
from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT

# sioctl's source folders and their import names.
PACKAGES = {"worker": "sioctl.worker", "cluster": "sioctl.cluster", "cli": "sioctl.cli",
            "sioctl": "sioctl"}


def private_uses() -> tuple[dict[str, list[str]], dict[str, list[str]], set[str]]:
    """sioctl's private names: (all uses incl. defs and strings, attribute accesses, names
    sioctl defines itself), each use as "path:line"."""
    uses: dict[str, list[str]] = {}
    accesses: dict[str, list[str]] = {}
    defined: set[str] = set()
    for path, tree in sources():
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
                name = node.name
            elif isinstance(node, ast.Attribute):
                if isinstance(node.ctx, ast.Store):
                    defined.add(node.attr)
                else:
                    accesses.setdefault(node.attr, []).append(f"{where}:{node.lineno}")
                name = node.attr
            elif isinstance(node, ast.Name):
                defined.add(node.id)
                continue
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.isidentifier():
                name = node.value
            else:
                continue
            if name.startswith("_") and not name.startswith("__"):
                uses.setdefault(name, []).append(f"{where}:{node.lineno}")
    accesses = {k: v for k, v in accesses.items() if k.startswith("_") and not
                k.startswith("__")}
    return uses, accesses, defined


def library_private_names() -> dict[str, str]:
    """Private member names of the library classes the contract names -> one such class."""
    names: dict[str, str] = {}
    for hook in HOOKS:
        if len(hook.path) < 2:
            continue
        owner = hook.target.rsplit(".", 1)[0]
        try:
            cls = resolve(owner)
        except (AttributeError, ImportError):
            continue
        if not inspect.isclass(cls):
            continue
        members = set(dir(cls))
        try:
            members |= set(vars(instance_of(owner)))
        except LookupError:
            pass
        for name in members:
            if name.startswith("_") and not name.startswith("__"):
                names.setdefault(name, owner)
    return names


def library_overrides() -> list[dict[str, str]]:
    """Every method a sioctl class defines that its library class also has: the class, the
    method, the library class (by its base classes, or MIXINS for a mixin)."""
    found = []
    for qualified, node, library_class in library_subclasses():
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and not item.name.startswith("__") and hasattr(library_class, item.name):
                found.append({"class": qualified, "method": item.name,
                              "library": target_of(library_class),
                              "mro": [target_of(c) for c in library_class.__mro__]})
    return found


def library_subclasses() -> Iterator[tuple[str, ast.ClassDef, Any]]:
    """(qualified name, class node, library class) of every sioctl class that extends a
    library class, by its bases or as a mixin named in MIXINS."""
    for path, tree in sources():
        imports = import_map(path, tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            qualified = f"{module_of(path)}:{node.name}"
            library_class = library_class_of(qualified, node, imports)
            if library_class is not None:
                yield qualified, node, library_class


def library_attribute_uses() -> list[dict[str, str]]:
    """Every attribute of its library class that a sioctl subclass or mixin uses through
    ``self`` (or ``server``, the mixins' typed alias of self) without defining it itself."""
    found = []
    for qualified, node, library_class in library_subclasses():
        own = {item.name for item in node.body
               if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
        own |= {target.id for item in node.body if isinstance(item, ast.AnnAssign)
                for target in [item.target] if isinstance(target, ast.Name)}
        own |= {target.id for item in node.body if isinstance(item, ast.Assign)
                for target in item.targets if isinstance(target, ast.Name)}
        try:
            instance_attributes = set(vars(instance_of(target_of(library_class))))
        except LookupError:
            instance_attributes = set()
        seen = set()
        for use in ast.walk(node):
            if isinstance(use, ast.Attribute) and isinstance(use.value, ast.Name) \
                    and use.value.id in ("self", "server") and use.attr not in own \
                    and not use.attr.startswith("__") and use.attr not in seen \
                    and (hasattr(library_class, use.attr)
                         or use.attr in instance_attributes):
                seen.add(use.attr)
                found.append({"class": qualified, "attribute": use.attr,
                              "library": target_of(library_class),
                              "mro": [target_of(c) for c in library_class.__mro__]})
    return found


def library_class_of(qualified: str, node: ast.ClassDef, imports: dict[str, str]) -> Any:
    """The library class a sioctl class extends (by its bases, or MIXINS), or None."""
    if qualified in contract.MIXINS:
        return resolve(contract.MIXINS[qualified])
    for base in node.bases:
        found = library_class_in(resolve_base(base, imports))
        if found is not None:
            return found
    return None


def unlisted_mixins() -> list[str]:
    """sioctl classes that call super() for a method none of their bases has: mixins meant
    for a library class, which must be named in MIXINS."""
    found = []
    for path, tree in sources():
        imports = import_map(path, tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            qualified = f"{module_of(path)}:{node.name}"
            supers = {call.func.attr for call in ast.walk(node)
                      if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                      and isinstance(call.func.value, ast.Call)
                      and isinstance(call.func.value.func, ast.Name)
                      and call.func.value.func.id == "super"}
            supers = {name for name in supers if not name.startswith("__")}
            if not supers or qualified in contract.MIXINS:
                continue
            bases = [resolve_base(base, imports) for base in node.bases]
            if any(base is None for base in bases) or any(map(library_class_in, bases)):
                continue  # a library subclass: its overrides are checked by the hooks
            if not all(any(hasattr(base, name) for base in bases) for name in supers):
                found.append(qualified)
    return found


def sources() -> Iterator[tuple[Path, ast.Module]]:
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    parts[0] = PACKAGES[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_map(path: Path, tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted path, from every import in the file (nested ones included)."""
    package = module_of(path).rsplit(".", 1)[0] if path.name != "__init__.py" \
        else module_of(path)
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = \
                    alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                names[alias.asname or alias.name] = f"{base}.{alias.name}"
    names.setdefault("__module__", module_of(path))
    return names


def resolve_base(expr: ast.expr, imports: dict[str, str]) -> Any:
    """The class a base-class expression names, or None when it cannot be resolved."""
    dotted = ast.unparse(expr)
    head, _, rest = dotted.partition(".")
    if head in imports:
        dotted = imports[head] + (f".{rest}" if rest else "")
    else:
        dotted = f"{imports['__module__']}.{dotted}"  # a class of the same module
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for part in parts[split:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return obj if inspect.isclass(obj) else None
    return None


def library_class_in(cls: Any) -> Any:
    """The first class of a contract library in ``cls``'s method order, or None."""
    if cls is None:
        return None
    for klass in inspect.getmro(cls):
        if klass.__module__.split(".")[0] in contract.LIBRARIES:
            return klass
    return None


def target_of(cls: Any) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"

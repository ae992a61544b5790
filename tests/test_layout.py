"""The layout page (docs/explanation/layout.md) lists every module of the package, and only
those; modules
and functions stay small enough to read in one go."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src/attnmt"


def documented() -> set[str]:
    """Paths (relative to src/attnmt) of the modules and packages the layout tree names."""
    text = (ROOT / "docs/explanation/layout.md").read_text()
    block = text.split("```", 2)[1]
    paths, stack = set(), []
    for line in block.splitlines()[2:]:                       # after "src/attnmt/"
        m = re.match(r"( *)(\S+)", line)
        if not m or not re.fullmatch(r"[\w]+(\.py|/)", m.group(2)):
            continue                                          # a description's second line
        depth = len(m.group(1)) // 2 - 1
        stack[depth:] = [m.group(2).rstrip("/")]
        paths.add("/".join(stack) + ("" if m.group(2).endswith(".py") else "/"))
    return {p for p in paths if not (p.endswith("/__init__.py"))}   # the package stands for it


def actual() -> set[str]:
    out = set()
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(PACKAGE)
        if rel.name == "__init__.py" and rel.parent != Path("."):
            out.add(f"{rel.parent}/")                         # a package stands for its init
        else:
            out.add(str(rel))
    return out


def test_the_documented_tree_is_the_real_one():
    doc, real = documented(), actual()
    page = "docs/explanation/layout.md"
    assert not real - doc, f"modules missing from {page}: {sorted(real - doc)}"
    assert not doc - real, f"{page} names modules that do not exist: {sorted(doc - real)}"


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def test_no_module_over_400_lines_and_no_function_over_60():
    long_modules, long_functions = [], []
    for f in sorted(PACKAGE.rglob("*.py")):
        text = f.read_text()
        rel = f.relative_to(PACKAGE)
        if text.count("\n") > MAX_MODULE_LINES:
            long_modules.append(f"{rel} ({text.count(chr(10))} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{rel}:{node.lineno} {node.name} ({n} lines)")
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def _helpers() -> list[str]:
    return [f.stem for f in (ROOT / "tests").glob("*.py")
            if not f.stem.startswith("test_") and f.stem != "conftest"]


def test_no_helper_module_in_tests_shadows_an_installed_package():
    """pytest puts tests/ on sys.path, so a helper named like an installed module is what a
    library imports instead of the real one."""
    import importlib.util
    import sys

    saved = sys.path[:]
    try:
        sys.path[:] = [p for p in saved if Path(p or ".").resolve() != ROOT / "tests"]
        clashes = [n for n in _helpers()
                   if n not in sys.modules and importlib.util.find_spec(n) is not None]
    finally:
        sys.path[:] = saved
    assert not clashes, f"tests/ helpers named like installed modules: {clashes}; rename them"


def test_no_helper_module_in_tests_is_an_optional_dependency_transformers_probes():
    """transformers asks whether optional packages are importable (``kernels``, ...); a
    tests/ helper of that name makes it import ours and fail (a CI run broke on
    tests/kernels.py)."""
    import transformers.utils.import_utils as probes

    source = Path(probes.__file__).read_text()
    probed = set(re.findall(r'_is_package_available\(\s*"([\w.]+)"', source))
    assert probed, "transformers no longer probes with _is_package_available: update this test"
    clashes = sorted(set(_helpers()) & probed)
    assert not clashes, f"tests/ helpers named like packages transformers probes: {clashes}"

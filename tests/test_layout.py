"""The code's layout, read from the sources with `ast` and a regex (nothing is imported):

- no module in lora_core/, authoring/ or ui/ writes a token id: the ids come from the tokenizer (SpecialTokens);
- lora_core and authoring never import gradio, not even inside a function;
- no import cycle between lora_core modules, counting imports inside functions;
- no cycle between the packages lora_core.data, lora_core.qwen, lora_core.analysis and lora_core.training.
"""
from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

from tests.conftest import ROOT

# Qwen's special tokens (<|endoftext|> 151643 … 151668), "assistant" 77091, "system" 8948, "user" 872, "\n" 198
TOKEN_ID = re.compile(r"(?<![\d.])\b(1516(?:4[3-9]|5\d|6[0-8])|77091|8948|872|198)\b(?!\.\d)")
SCANNED = ("lora_core", "authoring", "ui")
PACKAGES = ("lora_core.data", "lora_core.qwen", "lora_core.analysis", "lora_core.training")
# lora_core/cli.py imports its sub-command modules by name: importlib.import_module(f"lora_core.{name}")
DYNAMIC_IMPORT_LISTS = {"lora_core.cli": ("EXTRA_COMMAND_MODULES", "lora_core.")}


def sources(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py")
                  if "__pycache__" not in path.parts)


def relative(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else Path(path.name)


def where(path: Path, line: int) -> str:
    return f"{relative(path)}:{line}"


@lru_cache(maxsize=None)
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def module_name(path: Path) -> str:
    parts = list(relative(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def type_checking_only(tree: ast.Module) -> set[int]:
    """ids of import nodes under `if TYPE_CHECKING:` (never executed, so no runtime edge)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                skipped |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return skipped


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import in the file, at any depth; `import a.b` gives (line, "a.b", [])."""
    tree = parsed(path)
    skipped = type_checking_only(tree)
    package = module_name(path) if is_package(path) else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.append((node.lineno, module, [alias.name for alias in node.names]))
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
              and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value, []))
    return found


# --- token ids ---------------------------------------------------------------------------------


def token_id_literals(paths) -> list[str]:
    hits = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in TOKEN_ID.finditer(line):
                hits.append(f"{where(path, number)}: {match.group(1)} in {line.strip()!r}")
    return hits


def test_no_module_holds_a_token_id_literal():
    hits = token_id_literals(sources(*SCANNED))
    assert not hits, "token ids must come from the tokenizer (SpecialTokens), not literals:\n" + "\n".join(hits)


def test_the_token_id_scan_finds_whole_numbers_only(tmp_path):
    """The regex itself: whole numbers only, none inside a longer number or a decimal."""
    probe = tmp_path / "probe.py"
    probe.write_text("a = 151655\nb = [872, 198]\nc = 1515643 + 1516430 + 0.872 + 1872 + 8720 + 1_980\n"
                     "d = 151642 + 151669\ne = {'assistant': 77091, 'system': 8948}\n")
    hits = token_id_literals([probe])
    assert [hit.split(": ", 1)[1].split(" in ", 1)[0] for hit in hits] == ["151655", "872", "198", "77091", "8948"]
    assert [hit.split(": ", 1)[0] for hit in hits] == ["probe.py:1", "probe.py:2", "probe.py:2", "probe.py:5",
                                                       "probe.py:5"]


# --- gradio ------------------------------------------------------------------------------------


def test_lora_core_and_authoring_never_import_gradio():
    hits = [f"{where(path, line)}: imports {module}" for path in sources("lora_core", "authoring")
            for line, module, _ in imports(path) if module and module.split(".")[0] == "gradio"]
    assert not hits, "gradio belongs in ui/ only:\n" + "\n".join(hits)


def test_the_gradio_scan_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import gradio as gr\n\ndef g():\n    from gradio.data_classes import FileData\n")
    probe.write_text(probe.read_text() + "\nclass C:\n    def m(self):\n        importlib.import_module('gradio')\n")
    modules = sorted((line, module) for line, module, _ in imports(probe))
    assert modules == [(2, "gradio"), (5, "gradio.data_classes"), (9, "gradio")]


# --- import cycles -----------------------------------------------------------------------------


def module_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    """lora_core's modules and the lora_core modules each imports (at any depth), with where each edge is."""
    paths = {module_name(path): path for path in sources("lora_core")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    lines: dict[tuple[str, str], str] = {}
    for name, path in paths.items():
        for line, module, names in imports(path):
            if not module or module.split(".")[0] != "lora_core":
                continue
            targets = []
            submodules = [f"{module}.{item}" for item in names if f"{module}.{item}" in paths]
            targets += submodules
            if module in paths and (not names or len(submodules) < len(names)):
                targets.append(module)  # names defined in the module itself (or a plain `import module`)
            for target in targets:
                if target != name:
                    graph[name].add(target)
                    lines.setdefault((name, target), where(path, line))
        for line, target in dynamic_imports(name, path):
            if target in paths and target != name:
                graph[name].add(target)
                lines.setdefault((name, target), where(path, line) + " (by name)")
    return graph, lines


def dynamic_imports(name: str, path: Path) -> list[tuple[int, str]]:
    """Modules imported through a constant list of names (DYNAMIC_IMPORT_LISTS), e.g. the CLI's sub-commands."""
    if name not in DYNAMIC_IMPORT_LISTS:
        return []
    variable, prefix = DYNAMIC_IMPORT_LISTS[name]
    for node in parsed(path).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == variable for t in targets) and node.value is not None:
            return [(node.lineno, prefix + item.value) for item in ast.walk(node.value)
                    if isinstance(item, ast.Constant) and isinstance(item.value, str)]
    raise AssertionError(f"{where(path, 1)} no longer defines {variable}; update DYNAMIC_IMPORT_LISTS")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, found by depth-first search."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]

    def connect(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)

    found = []
    for component in components:
        start = min(component)
        path, seen = [start], {start}

        def walk(node):
            for target in sorted(graph[node] & component):
                if target == start:
                    return True
                if target not in seen:
                    seen.add(target)
                    path.append(target)
                    if walk(target):
                        return True
                    path.pop()
            return False

        walk(start)
        found.append(path + [start])
    return sorted(found)


def describe(cycle: list[str], lines: dict[tuple[str, str], str]) -> str:
    steps = [f"{a} -> {b} ({lines.get((a, b), '?')})" for a, b in zip(cycle, cycle[1:])]
    return " ; ".join(steps)


def test_cycle_search_reports_the_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_module_graph_resolves_submodule_imports():
    graph, _ = module_graph()
    # `from lora_core.qwen.recipes import NativeRecipe` is an edge to the package's __init__ ...
    assert "lora_core.qwen.recipes" in graph["lora_core.analysis.resolution"]
    # ... `from lora_core.qwen.recipes.base import ...` one to the submodule, and imports inside functions count
    assert "lora_core.qwen.recipes.base" in graph["lora_core.qwen.recipes.native"]
    assert "lora_core.qwen.checkpoint" in graph["lora_core.qwen.encoder"]  # imported inside image_processor()
    assert "lora_core.training.coverage_command" in graph["lora_core.cli"]  # a sub-command module, imported by name


def test_no_import_cycle_between_lora_core_modules():
    graph, lines = module_graph()
    found = cycles(graph)
    assert not found, "import cycles (counting imports inside functions):\n" + "\n".join(
        describe(cycle, lines) for cycle in found)


def test_no_cycle_between_the_lora_core_packages():
    graph, lines = module_graph()
    package_of = {name: next((p for p in PACKAGES if name == p or name.startswith(p + ".")), None) for name in graph}
    packages: dict[str, set[str]] = {p: set() for p in PACKAGES}
    edge_lines: dict[tuple[str, str], str] = {}
    for source, targets in graph.items():
        for target in targets:
            a, b = package_of[source], package_of[target]
            if a and b and a != b:
                packages[a].add(b)
                edge_lines.setdefault((a, b), f"{source} imports {target} at {lines[(source, target)]}")
    found = cycles(packages)
    assert not found, "package cycles:\n" + "\n".join(describe(cycle, edge_lines) for cycle in found)

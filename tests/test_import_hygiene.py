"""Import hygiene: the layers of DESIGN.md point down, and nothing imports in a circle.

The import graph is read statically (every `import`, lazy and TYPE_CHECKING ones
too), so an import that only runs on some path still counts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ccdash"

# DESIGN.md's layers, top to bottom: a module may import its own layer and those below.
LAYERS = ("cli", "tui", "headless", "scenario", "fleet", "ops", "engine", "brokers", "base")
_LAYER_OF = {
    "cli": "cli",
    "__main__": "cli",
    "worker": "cli",
    "bench": "cli",
    "replay": "cli",
    "validate": "cli",  # the command line's argument checks
    "handler_spec": "cli",  # --handler module:function
    "tui": "tui",
    "headless": "headless",
    "scenario": "scenario",
    "fleet": "fleet",
    "demo": "scenario",  # the simulated handler for workers
    "ops": "ops",
    "record": "ops",  # a recording, like the log and metrics, reads snapshots
    "engine": "engine",
    "brokers": "brokers",
    "clock": "base",
    "text": "base",
    "strict_json": "base",  # JSON from outside: finite numbers only
    "hints": "base",
    "backoff": "base",
    "aio": "base",
    "waiters": "base",
    "files": "base",
    "hangup": "base",  # output to a terminal that may be gone (tui, headless)
    "interrupts": "base",  # a real Ctrl-C, or a handler's own KeyboardInterrupt
    "heap": "base",  # the start-up heap out of full collections (tui, headless)
    "secret_env": "base",  # secrets read from the environment, then taken out of it
    "": "engine",  # the root package re-exports the engine
}
UI_AND_ABOVE = ("textual", "rich", "ccdash.scenario", "ccdash.fleet", "ccdash.tui")


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("ccdash", *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> every name it imports (modules of ours resolved; others as written)."""
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".")
                    keep = len(parts) - node.level + (1 if is_pkg else 0)
                    base = ".".join([*parts[:keep], *([base] if base else [])])
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
        resolved = set()
        for target in found:
            n = target
            while n and n not in mods and n.startswith("ccdash"):
                n = n.rpartition(".")[0]
            resolved.add(n if n in mods else target)
        resolved.discard(name)
        # A module reading a name from its own parent package is not counted: the
        # package is only the namespace it lives in (the lead's cycle tool skips it too).
        graph[name] = {t for t in resolved if not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(w for w in graph[root] if w in graph)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(x for x in graph[w] if x in graph))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def layer(module: str) -> str:
    """The DESIGN.md layer a module of ours belongs to."""
    first = module.split(".")[1] if "." in module else ""
    assert first in _LAYER_OF, f"{module}: give it a layer in _LAYER_OF (DESIGN.md's list)"
    return _LAYER_OF[first]


GRAPH = imports(modules())


def test_cycle_finder_finds_a_cycle() -> None:
    """The cycle finder reports a planted two-module cycle and a three-module one."""
    planted = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c", "x"}, "x": set()}
    assert sorted(cycles(planted)) == [["a", "b"], ["c", "d", "e"]]


def test_no_import_cycle_anywhere() -> None:
    """No module of ccdash imports itself through others (package re-exports included)."""
    assert cycles(GRAPH) == []


def test_imports_point_down_the_layers() -> None:
    """Every import of ours stays in its layer or goes to one below (DESIGN.md)."""
    upward = [
        f"{m} ({layer(m)}) imports {t} ({layer(t)})"
        for m, targets in GRAPH.items()
        for t in targets
        if t.startswith("ccdash") and LAYERS.index(layer(t)) < LAYERS.index(layer(m))
    ]
    assert upward == []


def test_engine_imports_no_ui_scenario_fleet_or_tui() -> None:
    """ccdash.engine never imports textual, rich, scenario, fleet or tui."""
    bad = [
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if m.startswith("ccdash.engine")
        for t in targets
        if t.startswith(UI_AND_ABOVE)
    ]
    assert bad == []


def test_brokers_never_import_the_engine() -> None:
    """ccdash.brokers imports nothing from the engine (or anything else above it)."""
    bad = [
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if m.startswith("ccdash.brokers")
        for t in targets
        if t.startswith(("ccdash.engine", *UI_AND_ABOVE))
    ]
    assert bad == []


def test_engine_parts_never_import_the_engine() -> None:
    """The Engine's parts get Protocols or read-only views, never the Engine module."""
    bad = [
        m
        for m, targets in GRAPH.items()
        if m.startswith("ccdash.engine.")
        and m != "ccdash.engine.engine"
        and "ccdash.engine.engine" in targets
    ]
    assert bad == []


def test_outside_code_uses_the_engines_public_api() -> None:
    """Outside ccdash.engine, code imports the package or the modules of the types its
    snapshots and settings are made of, never the Engine's parts."""
    public = {
        f"ccdash.engine.{m}" for m in ("snapshot", "states", "events", "alerts", "rules", "config")
    }
    bad = [
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if not m.startswith("ccdash.engine")
        for t in targets
        if t.startswith("ccdash.engine.") and t not in public
    ]
    assert bad == []


def test_engine_modules_stay_small() -> None:
    """No module of the engine is over about 400 lines."""
    big = {
        p.name: n
        for p in (PACKAGE / "engine").glob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert big == {}


def test_scenario_modules_stay_small() -> None:
    """No module of ccdash.scenario is over about 400 lines."""
    big = {
        p.name: n
        for p in (PACKAGE / "scenario").glob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert big == {}


def test_broker_modules_stay_small() -> None:
    """No module of the brokers (each broker's folder included) is over about 400 lines."""
    big = {
        str(p.relative_to(PACKAGE)): n
        for p in (PACKAGE / "brokers").rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert big == {}


def test_dashboard_and_headless_modules_stay_small() -> None:
    """No module of the dashboard (tui) or the headless runner is over about 400 lines."""
    big = {
        str(p.relative_to(PACKAGE)): n
        for p in (*(PACKAGE / "tui").glob("*.py"), *(PACKAGE / "headless").glob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert big == {}


def test_engine_never_imports_the_ui() -> None:
    """Importing the engine and brokers loads neither textual nor rich."""
    code = (
        "import sys, ccdash, ccdash.engine, ccdash.brokers.memory;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_memory_run_never_imports_the_fleet() -> None:
    """A headless run on the memory broker never loads the Redis fleet modules: loading
    them at the run's end (~0.3 s, more on a cold disk) blocked the event loop, and the
    report of a healthy run showed a loop-stalled alert for it."""
    code = (
        "import sys, io, contextlib\n"
        "from ccdash.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--demo', '--duration', '0.5', '--seed', '1'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('ccdash.fleet')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr

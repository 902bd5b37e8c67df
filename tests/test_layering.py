"""The package's structure: the run-time path never loads training code, no two modules
import each other, the command line holds no indexing logic, and importing the package
has no side effects."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "qbsd_cli"
TRAINING_ONLY = {"torch", "sklearn", "imblearn", "matplotlib", "onnx", "tensorflow", "dask", "distributed"}


def run_python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QBSD_", "OPENBLAS_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=REPO
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path) for path in PACKAGE.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """qbsd_cli modules that `path` imports anywhere (module level or inside functions)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("qbsd_cli"):
                # `from . import layout` imports the module layout, not its package's body
                submodules = {f"{target}.{alias.name}" for alias in node.names} & MODULES
                found.update(submodules or {target})
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("qbsd_cli"))
    return {target for target in found if target in MODULES and target != name}


def test_no_two_modules_import_each_other():
    graph = {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}
    # the package's __init__ only names the API lazily; it is nobody's dependency
    graph.pop("qbsd_cli", None)
    for imports in graph.values():
        imports.discard("qbsd_cli")

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return trail + [start]
                if nxt not in trail:
                    stack.append((nxt, trail + [nxt]))
        return None

    cycles = [cycle for cycle in map(cycle_from, sorted(graph)) if cycle]
    assert not cycles, f"import cycles: {cycles[:3]}"


def test_run_time_modules_never_import_training_code():
    for path in PACKAGE.rglob("*.py"):
        if "training" in path.relative_to(PACKAGE).parts or path.name == "cli.py":
            continue
        training = {target for target in imports_of(path) if target.startswith("qbsd_cli.training")}
        assert not training, f"{module_name(path)} imports {sorted(training)}"
    # the command line reaches training code only from inside `qbsd train` and `qbsd evaluate`
    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and "training" in (node.module or ""):
            owner = next(
                f.name
                for f in ast.walk(tree)
                if isinstance(f, ast.FunctionDef) and f.lineno <= node.lineno <= f.end_lineno
            )
            assert owner in {"train", "evaluate"}, f"cli.py imports training code in {owner}"


def test_the_run_time_path_loads_no_training_framework():
    # everything a `tag`, `index`, `similar` or `search` run imports
    loaded = run_python(
        "import sys, qbsd_cli, qbsd_cli.api, qbsd_cli.cli, qbsd_cli.store, qbsd_cli.indexing\n"
        "qbsd_cli.Index; qbsd_cli.tag\n"
        "print('\\n'.join(sorted(sys.modules)))"
    ).split()
    heavy = {name for name in loaded if name.split(".")[0] in TRAINING_ONLY}
    assert not heavy, sorted(heavy)
    assert not [name for name in loaded if name.startswith("qbsd_cli.training")]


def test_tag_and_index_without_cluster_never_import_dask(tmp_path):
    # real runs, workers and all: dask is the cluster extra's, loaded only for --cluster
    from helpers import write_chord

    chord = write_chord(tmp_path / "music" / "chord.wav")
    loaded = run_python(
        "import contextlib, io, sys\n"
        "from qbsd_cli.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    assert run(['tag', {str(chord)!r}]) == 0\n"
        f"    assert run(['index', {str(chord.parent)!r}, '--index', {str(tmp_path / 'index')!r}]) == 0\n"
        "print('\\n'.join(sorted(sys.modules)))"
    ).split()
    assert "qbsd_cli.store" in loaded  # the runs did run
    assert not [name for name in loaded if name.split(".")[0] in {"dask", "distributed"}]


def test_importing_the_package_has_no_side_effects():
    output = run_python(
        "import os, sys\n"
        "import qbsd_cli\n"
        "print(os.environ.get('OPENBLAS_NUM_THREADS'))\n"
        "print(sorted(m for m in ('numpy', 'onnxruntime', 'librosa', 'annoy') if m in sys.modules))"
    )
    assert output.split("\n")[:2] == ["None", "[]"]


def test_the_command_line_has_no_indexing_logic_of_its_own():
    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    used = imports_of(PACKAGE / "cli.py")
    # the command line reaches the index through the library, never the store or the scan
    assert not used & {"qbsd_cli.store", "qbsd_cli.scan", "qbsd_cli.indexing", "qbsd_cli.analysis"}, used
    calls = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not calls & {"put_song", "put_failure", "known_files", "transaction", "rebuild_annoy", "walk"}


def test_the_public_api_is_documented():
    import qbsd_cli

    for name in qbsd_cli.__all__:
        value = getattr(qbsd_cli, name)
        assert value.__doc__ and value.__doc__.strip(), f"qbsd_cli.{name} has no docstring"


def test_ranking_writes_nothing_and_reads_the_store_only_through_its_protocol():
    # ranking is pure numpy over a SongSource: no store module, no writer, no indexing
    used = imports_of(PACKAGE / "ranking.py")
    assert not {name for name in used if name.startswith("qbsd_cli.store")}, used
    assert not used & {"qbsd_cli.indexing", "qbsd_cli.api", "qbsd_cli.queries", "qbsd_cli.cli"}, used
    tree = ast.parse((PACKAGE / "ranking.py").read_text(encoding="utf-8"))
    calls = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not calls & {"put_song", "put_failure", "remove", "clear", "transaction", "rebuild_annoy", "bind_model"}


def test_the_command_line_uses_no_ranking_internals():
    # cli formats what the library ranked; choosing and ordering songs is ranking's job
    used = imports_of(PACKAGE / "cli.py")
    assert not used & {"qbsd_cli.ranking", "qbsd_cli.queries", "qbsd_cli.pools", "qbsd_cli.tagging"}, used


def test_one_home_for_each_job():
    # writing lives in indexing (the writer), query resolution in queries, retrieval in
    # ranking: the facade holds none of their internals
    api = (PACKAGE / "api.py").read_text(encoding="utf-8")
    tree = ast.parse(api)
    [index] = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Index"]
    assert index.end_lineno - index.lineno < 200
    assert len(api.splitlines()) < 400
    calls = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not calls & {"put_song", "transaction", "rebuild_annoy", "reset", "writer_lock", "scan", "nearest"}
    # one unit normalisation: every other module calls ranking.unit / unit_rows
    for path in PACKAGE.rglob("*.py"):
        if "training" in path.relative_to(PACKAGE).parts or path.name == "ranking.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert "/ np.linalg.norm" not in text and "np.maximum(np.linalg.norm" not in text, path


def test_no_private_function_takes_more_than_six_parameters():
    for path in PACKAGE.rglob("*.py"):
        if "training" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("_") and not node.name.startswith("__"):
                arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                count = len([a for a in arguments if a.arg not in ("self", "cls")])
                assert count <= 6, f"{module_name(path)}.{node.name} takes {count} parameters"

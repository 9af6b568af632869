"""Import hygiene: the operator never pulls torch, and operator/ never shadows the stdlib."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)


def test_stdlib_operator_is_not_shadowed_from_repo_root() -> None:
    result = _run("import operator, typing, collections; assert hasattr(operator, 'itemgetter'); print('ok')")
    assert result.returncode == 0, result.stderr
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_operator_packages_do_not_import_torch() -> None:
    modules = [
        "fulcrum",
        "fulcrum.cli",
        "fulcrum.api",
        "fulcrum.api.crd",
        "fulcrum.policy",
        "fulcrum.resources",
        "fulcrum.metrics",
        "fulcrum.metrics.sources",
        "fulcrum.simulate",
        "fulcrum.handlers",
        "fulcrum.controller.kube",
        "fulcrum.controller.informer",
        "fulcrum.controller.leader",
        "fulcrum.controller.reconciler",
        "fulcrum.controller.manager",
        "fulcrum.commands.run",
        "model_repo_builder",
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "heavy = sorted(n for n in ('torch', 'onnx', 'onnxruntime') if n in sys.modules)\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr + result.stdout


def test_cli_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fulcrum", "--help"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    for name in ("run", "crd", "build", "serve", "simulate", "load", "dev"):
        assert f"  {name} " in result.stdout


def test_the_operator_image_leaves_out_only_what_fulcrum_run_never_imports() -> None:
    """images/fulcrum/Containerfile drops numpy and tritonclient from the operator's image (about 120 MB with what
    they pull in): `fulcrum run`, the handlers and everything the reconciler and the control loop import must work
    without them (they are blocked here, so an import of either fails)."""
    containerfile = (ROOT / "images" / "fulcrum" / "Containerfile").read_text()
    assert "grep -vE '^(numpy|tritonclient)\\b'" in containerfile
    code = (
        "import sys\n"
        "sys.modules.update(numpy=None, tritonclient=None, torch=None)\n"
        "import importlib, pkgutil\n"
        "import fulcrum.cli, fulcrum.commands.run, fulcrum.handlers\n"
        "for package in ('api', 'controller', 'metrics', 'policy', 'reconcile', 'resources'):\n"
        "    root = importlib.import_module(f'fulcrum.{package}')\n"
        "    for info in pkgutil.walk_packages(root.__path__, f'fulcrum.{package}.'):\n"
        "        importlib.import_module(info.name)\n"
        "print('ok')\n"
    )
    result = _run(code)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_storage_stands_alone_on_the_standard_library() -> None:
    """fulcrum.storage runs in the builder's fetch and publish steps and in the serving pods' download step (the
    operator's image, `fulcrum storage pull`): it imports nothing beyond the standard library and itself, so no
    third-party package and no other part of Fulcrum can reach those steps through it."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import importlib, pkgutil\n"
        "import fulcrum.storage\n"
        "for info in pkgutil.walk_packages(fulcrum.storage.__path__, 'fulcrum.storage.'):\n"
        "    importlib.import_module(info.name)\n"
        "added = {n.split('.')[0] for n in set(sys.modules) - before}\n"
        "others = sorted(n for n in set(sys.modules) - before if n.startswith('fulcrum.')\n"
        "                and not n.startswith('fulcrum.storage'))\n"
        "third = sorted(n for n in added - {'fulcrum'} if n not in sys.stdlib_module_names and not n.startswith('_'))\n"
        "assert not others and not third, (others, third)\n"
        "print('ok')\n"
    )
    result = _run(code)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr

"""The inference package stands alone: nothing under python/ddad_rt/ imports PyTorch, ONNX,
ONNX Runtime or ddad_train, except the CLI's dispatch to training commands inside their
functions (issue 17). Checked in the source, and by importing every module of the package
and scoring with those packages made unimportable."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TRAINING_SIDE = ("torch", "onnx", "onnxruntime", "onnxscript", "ddad_train")
SOURCE = Path(__file__).resolve().parents[2] / "python" / "ddad_rt"


def imported_modules(tree: ast.AST, top_level_only: bool) -> list[tuple[str, int]]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


def test_no_module_of_ddad_rt_imports_the_training_side():
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        # The CLI may dispatch to training commands, inside the functions that run them.
        for name, line in imported_modules(tree, top_level_only=path.name == "cli.py"):
            if name.split(".")[0] in TRAINING_SIDE:
                offenders.append(f"{path.relative_to(SOURCE.parent)}:{line} imports {name}")
    assert not offenders, "\n".join(offenders)


BLOCKED_RUN = """
import importlib, pkgutil, sys
BLOCKED = {blocked!r}

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked: ddad_rt must not need it")
        return None

sys.meta_path.insert(0, Block())
import numpy as np
import ddad_rt
for info in pkgutil.walk_packages(ddad_rt.__path__, "ddad_rt."):
    importlib.import_module(info.name)
engine = ddad_rt.Engine({bundle!r}, device="cpu")
print(len(engine.score(np.zeros((2, *engine.image_size), np.uint8)).score), "scored")
"""


def test_ddad_rt_imports_and_scores_with_the_training_side_unimportable(bundle):
    code = BLOCKED_RUN.format(blocked=TRAINING_SIDE, bundle=str(bundle))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2 scored"

"""No disk I/O in methods (issue 27 item 3): nothing in jax_ssl/methods/ imports a module
that reads files or calls a function that does; a frozen teacher from another run is loaded
by the build step (jax_ssl/teachers.py) and handed in. Read from the source (AST): the
check sees every code path, not only those a test happens to run."""

import ast
import glob
import os

import pytest

METHODS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "jax_ssl", "methods")
FILES = sorted(glob.glob(os.path.join(METHODS_DIR, "*.py")))

# What a method may import: array math, its own package, models, losses and pure helpers.
# Anything else (os, json, pathlib, orbax, etils, ml_collections, jax_ssl.fs,
# jax_ssl.checkpoint, ...) has no place in a pure loss and its wiring.
ALLOWED = ("__future__", "typing", "dataclasses", "functools", "itertools", "math",
           "contextlib", "collections", "enum", "abc", "jax", "numpy", "flax", "optax",
           "jax_ssl.methods", "jax_ssl.models", "jax_ssl.losses", "jax_ssl.masking",
           "jax_ssl.hog", "jax_ssl.multiblock", "jax_ssl.optim", "jax_ssl.sharding", "jax_ssl.errors", "jax_ssl.config.typed")
# The one exception: a spec's `load_teacher` hook, which only the build step calls, defers to
# the loaders of jax_ssl/teachers.py.
TEACHER_LOADERS = "jax_ssl.teachers"
# Calls that read or write files whatever module they come from (np.load, Path.read_text...).
FILE_CALLS = {"open", "load", "loads", "save", "savez", "fromfile", "tofile", "read_text",
              "write_text", "read_bytes", "write_bytes", "exists", "is_dir", "listdir", "glob",
              "__import__", "import_module"}


def _allowed(module: str) -> bool:
  return any(module == ok or module.startswith(ok + ".") for ok in ALLOWED)


def disk_access(source: str) -> list[str]:
  """Each import outside ALLOWED and each file-reading call in `source`, as 'line: what'."""
  found = []

  def visit(node: ast.AST, function: str | None) -> None:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      function = node.name
    modules = []
    if isinstance(node, ast.Import):
      modules = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0:
      modules = [f"{node.module}.{alias.name}" if node.module == "jax_ssl" else node.module
                 for alias in node.names]
    for module in modules:
      if not _allowed(module) and not (module == TEACHER_LOADERS and function == "load_teacher"):
        found.append(f"{node.lineno}: import {module}")
    if isinstance(node, ast.Call):
      name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
      if name in FILE_CALLS:
        found.append(f"{node.lineno}: call {name}()")
    for child in ast.iter_child_nodes(node):
      visit(child, function)

  visit(ast.parse(source), None)
  return found


def test_the_check_sees_what_methods_used_to_do():
  # What methods/vq_tokenizer.py and beit.py held before the teacher moved to the build step.
  before = ("import json\nimport orbax.checkpoint as ocp\nfrom etils import epath\n"
            "from jax_ssl import checkpoint, fs, losses\n"
            "def codebook_size(workdir):\n"
            "  config = json.loads((fs.path(workdir) / 'config.json').read_text())\n"
            "def make_heads(backbone, head_args, method_args, rngs):\n"
            "  from jax_ssl import teachers\n")
  assert disk_access(before) == [
      "1: import json", "2: import orbax.checkpoint", "3: import etils",
      "4: import jax_ssl.checkpoint", "4: import jax_ssl.fs", "6: call loads()",
      "6: call read_text()", "8: import jax_ssl.teachers"]
  assert disk_access("def load_teacher(args):\n  from jax_ssl import teachers\n") == []


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_method_files_do_no_disk_io(path):
  with open(path) as f:
    assert disk_access(f.read()) == [], f"{os.path.basename(path)} reads files"

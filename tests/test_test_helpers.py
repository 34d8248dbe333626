"""The test suite's own helpers leave nothing behind (tests/trainer_subprocess.py)."""

import os
import subprocess
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))


def _cache_dirs(folder):
  return [name for name in os.listdir(folder) if name.startswith("jax_ssl_test_compilation_cache_")]


def test_importing_the_trainer_helpers_makes_no_directory(tmp_path):
  """grain's worker processes import test modules (spawn) and end with os._exit, past atexit:
  a compilation-cache directory made at import outlived each of them (33 were found in /tmp
  after a few runs of tests/data). Made on first use, none is left by an import, and one that
  is used is removed at a normal exit."""
  env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": TESTS}
  code = "import os, trainer_subprocess; os._exit(0)"
  subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
  assert _cache_dirs(tmp_path) == []
  code = ("import os, trainer_subprocess as ts; path = ts.compilation_cache(); "
          "assert os.path.isdir(path) and path == ts.compilation_cache(); print(path)")
  out = subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120,
                       capture_output=True, text=True)
  assert out.stdout.strip().startswith(str(tmp_path))
  assert _cache_dirs(tmp_path) == []  # removed at exit

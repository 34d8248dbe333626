"""pyproject.toml: the core dependencies and the extras, version ranges that admit the
machines' jax, the license, the packages (experiment files included), and `jax_ssl.losses`
importing with none of the training or evaluation extras installed."""

import os
import re
import subprocess
import sys
import textwrap
import tomllib

from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Modules of the extras ([train], [eval]); none may be needed by `import jax_ssl.losses`.
EXTRA_MODULES = ("tensorflow_datasets", "tensorflow", "grain", "array_record", "orbax",
                 "ml_collections", "tensorboardX", "tqdm", "PIL", "matplotlib", "sklearn")


def _project():
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)


def _requirements(names):
  return {Requirement(r).name.replace("_", "-").lower(): Requirement(r) for r in names}


def test_core_dependencies_and_extras():
  project = _project()["project"]
  core = _requirements(project["dependencies"])
  assert set(core) == {"jax", "jaxlib", "flax", "optax", "numpy"}
  extras = project["optional-dependencies"]
  train = _requirements(extras["train"])
  assert {"orbax-checkpoint", "tensorflow-datasets", "grain", "array-record", "ml-collections",
          "absl-py", "tensorboardx", "tqdm", "pillow"} <= set(train)
  assert set(_requirements(extras["eval"])) == {"matplotlib", "scikit-learn"}
  assert extras["all"] == ["jax_ssl[train,eval]"]
  assert "jax_ssl[all]" in extras["test"]
  # Ranges: today's releases and the accelerator image's jax 0.11 in, the next minor out.
  ranged = {**core, **train}
  for name, allowed, refused in [("jax", ["0.10.2", "0.11.2"], ["0.10.1", "0.12.0"]),
                                 ("jaxlib", ["0.10.2", "0.11.2"], ["0.12.0"]),
                                 ("flax", ["0.12.8"], ["0.14.0"]),
                                 ("orbax-checkpoint", ["0.12.8"], ["0.14.0"]),
                                 ("grain", ["0.2.18"], ["0.3.0"])]:
    for version in allowed:
      assert ranged[name].specifier.contains(version), (name, version)
    for version in refused:
      assert not ranged[name].specifier.contains(version), (name, version)


def test_license_is_apache_2():
  project = _project()["project"]
  assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
  with open(os.path.join(ROOT, "LICENSE")) as f:
    assert "Apache License" in f.read(600)


def test_every_package_and_the_experiment_files_are_shipped():
  setuptools = _project()["tool"]["setuptools"]
  assert setuptools["package-dir"] == {"jax_ssl_experiments": "experiments"}
  on_disk = set()
  for top, name in (("jax_ssl", "jax_ssl"), ("experiments", "jax_ssl_experiments")):
    for folder, _, files in os.walk(os.path.join(ROOT, top)):
      if "__init__.py" in files:
        relative = os.path.relpath(folder, os.path.join(ROOT, top))
        on_disk.add(name if relative == "." else f"{name}.{relative.replace(os.sep, '.')}")
  assert set(setuptools["packages"]) == on_disk
  assert "backends/cpu_kernels/*.cc" in setuptools["package-data"]["jax_ssl"]


def test_readme_commands_install_what_they_run_and_ci_runs_the_test_command():
  with open(os.path.join(ROOT, "README.md")) as f:
    readme = f.read()
  with open(os.path.join(ROOT, ".ci", "run")) as f:
    ci_command = f.read().strip().splitlines()[-1]
  commands = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
  main_job = next(c for c in commands if "jax_ssl.train" in c)
  assert "pip install -e '.[all]'" in main_job  # the trainer and its report
  # The same install and test run (.ci/run quiets apt-get with -qq).
  tests = next(c for c in commands if "pytest" in c)
  assert ci_command.partition("python3 -m venv")[2] == tests.partition("python3 -m venv")[2]
  assert "pip install -q -e '.[test]'" in ci_command  # [test] pulls [all]


def test_losses_import_with_only_the_core_dependencies():
  """A finder that refuses the extras' modules stands in for an install without them."""
  script = textwrap.dedent(f"""
      import sys
      BLOCKED = {EXTRA_MODULES!r}

      class Refuse:
        def find_spec(self, name, path=None, target=None):
          if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is not installed (blocked by the test)")
          return None

      sys.meta_path.insert(0, Refuse())
      import jax_ssl
      import jax_ssl.losses
      import jax.numpy as jnp
      loss = jax_ssl.losses.nt_xent(jnp.eye(4, 8), jnp.eye(4, 8), temperature=0.5)
      print(sorted({{m.split(".")[0] for m in sys.modules}} & set(BLOCKED)), float(loss) > 0)
  """)
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                        text=True, timeout=300,
                        env={**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.split() == ["[]", "True"]

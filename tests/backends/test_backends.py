"""The backend interface (jax_ssl/backends): `import jax_ssl` changes no process state and
never runs g++; `select` resolves names and refuses unknown ones in one line; `auto` picks
`cpu_kernels` only on a CPU where the kernels apply; `xla` never touches the plug-in; both
backends compute the same ResNet."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_ssl import backends
from jax_ssl.backends import cpu_kernels
from jax_ssl.backends.cpu_kernels import build
from jax_ssl.errors import ConfigError
from jax_ssl.models import resnet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Child: import jax_ssl and report XLA_FLAGS; build and run a ResNet on the default (xla)
# backend, then build one on the backend "auto" selects (cpu_kernels on this CPU) without
# running it, then run that one (the positive control: its first trace builds the kernels).
# `CXX` is a wrapper that records every compiler call in a marker file.
CHILD = r"""
import json, os, sys
import jax_ssl
report = {"xla_flags_after_import": os.environ.get("XLA_FLAGS")}
import jax, jax.numpy as jnp
from flax import nnx
from jax_ssl import backends
from jax_ssl.models import resnet
marker = os.environ["MARKER"]
def model(backend):  # stem + one block: the smallest ResNet
  return resnet.ResNet((1,), resnet.BasicBlock, 16, "cifar", 1, backend=backend,
                       rngs=nnx.Rngs(0))
x = jnp.ones((2, 8, 8, 1))
jax.block_until_ready(model(backends.select("xla"))(x))
report["plugin_loaded_by_xla"] = "jax_ssl.backends.cpu_kernels" in sys.modules
report["compiler_ran_for_xla"] = os.path.exists(marker)
auto = backends.select("auto")
report["auto"] = auto.name
kernels = model(auto)
report["compiler_ran_at_selection"] = os.path.exists(marker)
kernels.eval()  # a plain jax.jit cannot update the BatchNorm statistics
jax.block_until_ready(jax.jit(lambda x: kernels(x))(x))
report["compiler_ran_at_trace"] = os.path.exists(marker)
report["xla_flags_at_exit"] = os.environ.get("XLA_FLAGS")
print(json.dumps(report))
"""


def test_import_changes_no_process_state_and_xla_never_runs_the_compiler(tmp_path):
  if not (build.has_avx512() and build.compiler()):
    pytest.skip("the positive control needs an AVX-512 CPU and g++")
  marker = tmp_path / "compiler_ran"
  wrapper = tmp_path / "cxx"
  wrapper.write_text(f'#!/bin/sh\ntouch "{marker}"\nexec "{build.compiler()}" "$@"\n')
  wrapper.chmod(0o755)
  environ = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  environ.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, CXX=str(wrapper), MARKER=str(marker))
  proc = subprocess.run([sys.executable, "-c", CHILD], env=environ, capture_output=True,
                        text=True, timeout=300, check=True)
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  assert report == {"xla_flags_after_import": None, "plugin_loaded_by_xla": False,
                    "compiler_ran_for_xla": False, "auto": "cpu_kernels",
                    "compiler_ran_at_selection": False, "compiler_ran_at_trace": True,
                    "xla_flags_at_exit": None}


def test_select_resolves_names_and_auto_by_platform_and_machine(monkeypatch):
  assert backends.select("xla") is backends.XLA
  assert backends.select("cpu_kernels", platform="gpu") is cpu_kernels.backend()
  for platform in ("gpu", "tpu"):
    assert backends.select("auto", platform=platform) is backends.XLA
  monkeypatch.setattr(cpu_kernels, "applies_to_this_machine", lambda: True)
  assert backends.select("auto", platform="cpu") is cpu_kernels.backend()
  monkeypatch.setattr(cpu_kernels, "applies_to_this_machine", lambda: False)
  assert backends.select("auto", platform="cpu") is backends.XLA


def test_auto_applies_where_the_backend_was_measured(monkeypatch):
  """`applies_to_this_machine`: an AVX-512 CPU with a compiler (the kernels), or an AVX2 CPU
  without AVX-512 (fused BatchNorm and the matrix-product path; no compiler needed);
  neither elsewhere (e.g. an ARM CPU, whose flags name neither)."""
  for flags, compiler, expected in (("avx2 avx512f", "/usr/bin/g++", True),
                                    ("avx2 avx512f", None, False),
                                    ("avx avx2 fma", None, True),
                                    ("avx avx2 fma", "/usr/bin/g++", True),
                                    ("fp asimd sve", "/usr/bin/g++", False)):
    monkeypatch.setattr(build, "_cpu_id", lambda flags=flags: f"flags : {flags}\n")
    monkeypatch.setattr(build, "compiler", lambda compiler=compiler: compiler)
    assert cpu_kernels.applies_to_this_machine() is expected, (flags, compiler)


def test_an_unknown_backend_is_one_line_naming_the_choices():
  for call in (backends.select, backends.prepare_process):
    with pytest.raises(ConfigError) as error:
      call("cpu-kernels")
    assert str(error.value) == "backend='cpu-kernels'; use 'auto', 'xla' or 'cpu_kernels'"


def test_the_backends_compute_the_same_resnet():
  """The whole cpu_kernels backend (kernels and fused BatchNorm on every op) against xla:
  same parameters, features and updated BatchNorm statistics in training mode."""
  if build.load() is None:
    pytest.skip("no C++ compiler")
  images = jax.random.uniform(jax.random.key(0), (4, 8, 8, 1))

  def run(backend):  # stem, a block and a strided block with its projection shortcut
    model = resnet.ResNet((1, 1), resnet.BasicBlock, 16, "cifar", 1, backend=backend,
                          rngs=nnx.Rngs(0))
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)

    def forward(params, stats):
      m = nnx.merge(graphdef, params, stats, copy=True)
      return m(images), nnx.state(m, nnx.BatchStat)

    hlo = jax.jit(forward).lower(params, stats).as_text()
    features, new_stats = jax.jit(forward)(params, stats)
    return params, features, new_stats, hlo

  params_k, features_k, stats_k, hlo_k = run(cpu_kernels.backend(every_op=True))
  params_x, features_x, stats_x, hlo_x = run(backends.XLA)
  assert "JaxSslConv" in hlo_k and "JaxSslConv" not in hlo_x
  for a, b in zip(jax.tree.leaves(params_k), jax.tree.leaves(params_x)):
    np.testing.assert_array_equal(a, b)
  assert float(jnp.std(features_x)) > 0.01
  np.testing.assert_allclose(features_k, features_x, rtol=1e-4, atol=1e-5)
  for a, b in zip(jax.tree.leaves(stats_k), jax.tree.leaves(stats_x)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["cpu_kernels", "xla"])
def test_build_model_takes_the_backbones_and_heads_layers_from_the_backend(name):
  """`config.build_model`: the backbone from `select(config.backend)`, and the heads too,
  though `make_heads` takes no backend (built inside `backends.use`)."""
  from conftest import tiny_config, typed  # pylint: disable=g-import-not-at-top
  from jax_ssl import config as config_lib  # pylint: disable=g-import-not-at-top
  from jax_ssl.backends.cpu_kernels import batch_norm as fused_bn  # pylint: disable=g-import-not-at-top
  from jax_ssl.models import batch_norm as batch_norm_lib  # pylint: disable=g-import-not-at-top
  config = typed(tiny_config("unused", "unused")).replace(backend=name)
  model = nnx.eval_shape(lambda: config_lib.build_model(config, 1, 0))
  where = {path[0] for path, m in nnx.iter_graph(model) if isinstance(m, batch_norm_lib.BatchNorm)}
  assert where == {"backbone", "heads"}
  fused = name == "cpu_kernels"
  for _, m in nnx.iter_graph(model):
    if isinstance(m, batch_norm_lib.BatchNorm):
      assert isinstance(m, fused_bn.FusedBatchNorm) == fused
    if isinstance(m, nnx.Conv):
      assert (m.conv_general_dilated is not jax.lax.conv_general_dilated) == fused
  assert backends.current() is backends.XLA  # the scope ended with the build

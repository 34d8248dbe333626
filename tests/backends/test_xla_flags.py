"""The CPU platform's XLA flag (convolutions off YNNPACK, jax_ssl/backends/cpu_kernels/
xla_flags.py): `prepare_process` applies it on the CPU platform only, keeps the user's own
value, and it computes the same values and gradients as XLA's default routing."""

import json
import os
import subprocess
import sys

import numpy as np

from jax_ssl import backends
from jax_ssl.backends.cpu_kernels import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLAG = "--xla_cpu_experimental_ynn_fusion_type"

# Child process: call prepare_process as the entry points do (argv[2] == "prepare") or only
# import jax_ssl, then report whether the conv landed in a YNN fusion, and a residual CNN's
# loss and gradients on fixed inputs (XLA's convolutions: the xla backend).
CHILD = r"""
import json, os, sys
import numpy as np
import jax_ssl
from jax_ssl import backends
if sys.argv[2] == "prepare":
  backends.prepare_process("xla")
import jax, jax.numpy as jnp
from flax import nnx
from jax_ssl.models import resnet
x = jnp.ones((4, 12, 12, 32))
w = jnp.ones((3, 3, 32, 32))
conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                         dimension_numbers=("NHWC", "HWIO", "NHWC")))
hlo = conv.lower(x, w).compile().as_text()
model = resnet.make_backbone("resnet_small", width=16, stem="cifar", in_channels=1, rngs=nnx.Rngs(0))
graphdef, params, rest = nnx.split(model, nnx.Param, ...)
images = jax.random.uniform(jax.random.key(1), (32, 28, 28, 1))
def loss_fn(params):
  m = nnx.merge(graphdef, params, rest, copy=True)
  return jnp.mean(jnp.square(m(images) - 0.3))
loss, grads = jax.jit(jax.value_and_grad(loss_fn))(params)
np.savez(sys.argv[1], loss=np.asarray(loss), *[np.asarray(g) for g in jax.tree.leaves(grads)])
print(json.dumps({"ynn_conv": "__ynn_fusion" in hlo, "xla_flags": os.environ.get("XLA_FLAGS", "")}))
"""


def _child(tmp_path, mode):
  out = str(tmp_path / f"{mode}.npz")
  environ = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  environ.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", CHILD, out, mode], env=environ,
                        capture_output=True, text=True, timeout=300, check=True)
  info = json.loads(proc.stdout.strip().splitlines()[-1])
  return info, np.load(out)


def test_apply_respects_user_flags():
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  assert xla_flags.apply(env) == (
      "--xla_force_host_platform_device_count=8 " + FLAG + "=-individual_convolution")
  assert xla_flags.apply(env) == env["XLA_FLAGS"]  # idempotent
  user = {"XLA_FLAGS": FLAG + "=+eltwise"}
  assert xla_flags.apply(user) == FLAG + "=+eltwise"


def test_prepare_process_sets_the_flag_on_the_cpu_platform_only(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
  for platform in ("gpu", "tpu"):
    assert backends.prepare_process("cpu_kernels", platform=platform).xla_flags == (
        "--xla_force_host_platform_device_count=8")
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=8"
  assert FLAG + "=-individual_convolution" in backends.prepare_process(
      "xla", platform="cpu").xla_flags
  assert FLAG + "=-individual_convolution" in os.environ["XLA_FLAGS"]


def test_default_routing_takes_effect_and_matches_xla_default(tmp_path):
  ours, ours_values = _child(tmp_path, "prepare")
  plain, plain_values = _child(tmp_path, "import only")
  assert FLAG + "=-individual_convolution" in ours["xla_flags"] and plain["xla_flags"] == ""
  assert not ours["ynn_conv"] and plain["ynn_conv"]  # the flag reached XLA in the child
  assert len(ours_values.files) == len(plain_values.files) > 10
  for key in ours_values.files:
    np.testing.assert_allclose(ours_values[key], plain_values[key], rtol=2e-4, atol=1e-6)

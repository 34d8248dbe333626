"""The library's XLA:CPU default (convolutions off YNNPACK) is applied, can be refused, and
computes the same values and gradients as XLA's default routing."""

import json
import os
import subprocess
import sys

import numpy as np

from jax_ssl import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAG = "--xla_cpu_experimental_ynn_fusion_type"

# Child process: import jax_ssl first (as every entry point does), then report whether the
# conv landed in a YNN fusion, and a residual CNN's loss and gradients on fixed inputs.
CHILD = r"""
import json, sys
import numpy as np
import jax_ssl
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
print(json.dumps({"ynn_conv": "__ynn_fusion" in hlo, "xla_flags": jax_ssl.xla_flags.os.environ.get("XLA_FLAGS", "")}))
"""


def _child(tmp_path, name, **env):
  out = str(tmp_path / f"{name}.npz")
  environ = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_SSL_XLA_DEFAULTS")}
  environ.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, **env)
  proc = subprocess.run([sys.executable, "-c", CHILD, out], env=environ, capture_output=True,
                        text=True, timeout=300, check=True)
  info = json.loads(proc.stdout.strip().splitlines()[-1])
  return info, np.load(out)


def test_apply_defaults_respects_user_flags_and_opt_out():
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  assert xla_flags.apply_defaults(env) == (
      "--xla_force_host_platform_device_count=8 " + FLAG + "=-individual_convolution")
  assert xla_flags.apply_defaults(env) == env["XLA_FLAGS"]  # idempotent
  user = {"XLA_FLAGS": FLAG + "=+eltwise"}
  assert xla_flags.apply_defaults(user) == FLAG + "=+eltwise"
  refused = {"JAX_SSL_XLA_DEFAULTS": "0"}
  assert xla_flags.apply_defaults(refused) == "" and "XLA_FLAGS" not in refused


def test_default_routing_takes_effect_and_matches_xla_default(tmp_path):
  ours, ours_values = _child(tmp_path, "ours")
  plain, plain_values = _child(tmp_path, "plain", JAX_SSL_XLA_DEFAULTS="0")
  assert FLAG + "=-individual_convolution" in ours["xla_flags"]
  assert not ours["ynn_conv"] and plain["ynn_conv"]  # the flag reached XLA in the child
  assert len(ours_values.files) == len(plain_values.files) > 10
  for key in ours_values.files:
    np.testing.assert_allclose(ours_values[key], plain_values[key], rtol=2e-4, atol=1e-6)

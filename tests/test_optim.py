"""Schedules of the optimizer and of the EMA targets (jax_ssl/optim.py)."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import typed
from jax_ssl import optim
from jax_ssl.config import build
from jax_ssl.errors import ConfigError


def test_linear_momentum():
  assert float(optim.linear_momentum(0.996, 1.0, 0, 100)) == pytest.approx(0.996)
  assert float(optim.linear_momentum(0.996, 1.0, 25, 100)) == pytest.approx(0.997)
  assert float(optim.linear_momentum(0.9998, 0.99999, 200, 100)) == pytest.approx(0.99999)


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_weight_decay_moves_on_a_cosine(name):
  # Zero gradients: AdamW's and SGD's own updates are 0, so each step multiplies a decayed
  # weight by 1 - lr * wd(step) (AdamW's decay is scaled by the rate, as torch's; SGD adds
  # wd * w to the gradient); wd(0) = 0.04, wd(5) = 0.22, wd(10) = 0.4 over 10 steps, while
  # the bias is never decayed.
  lr = 0.5
  tx = optim.make_optimizer(name, optax.constant_schedule(lr), weight_decay=0.04,
                            momentum=0.0 if name == "sgd" else 0.9, weight_decay_end=0.4,
                            total_steps=10)
  params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}
  state = tx.init(params)
  seen = []
  for _ in range(11):
    updates, state = tx.update(jax_zeros(params), state, params)
    seen.append(float(-updates["kernel"][0, 0]) / lr)
    assert float(updates["bias"][0]) == 0.0
  np.testing.assert_allclose([seen[0], seen[5], seen[10]], [0.04, 0.22, 0.4], rtol=1e-5)
  np.testing.assert_allclose(seen[2], 0.4 + (0.04 - 0.4) * (1 + np.cos(np.pi * 0.2)) / 2,
                             rtol=1e-5)


def jax_zeros(tree):  # zero gradients of the same structure
  return {k: jnp.zeros_like(v) for k, v in tree.items()}


def test_weight_decay_end_from_the_config():
  config = typed({"method": "simclr", "optimizer": {"name": "adamw", "weight_decay": 0.04,
                                                    "weight_decay_end": 0.4}})
  tx, _ = build.build_optimizer(config)
  assert tx is not None
  with pytest.raises(ConfigError, match="weight_decay_end=0.4 with optimizer.name='lars'"):
    typed({"method": "simclr", "optimizer": {"name": "lars", "weight_decay_end": 0.4}})

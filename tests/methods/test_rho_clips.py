"""rho-BYOL and rho-MoCo: BYOL's and MoCo v2's `num_clips` (rho views, each predicting /
contrasting every other) and MoCo v2's queue per clip, on clip-shaped views."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_clip_config, typed
from jax_ssl import config as config_lib
from jax_ssl import losses
from jax_ssl.errors import ConfigError
from jax_ssl.methods import byol, moco_v2
from jax_ssl.methods.spec import SSLModel, StepContext


class _MeanOfClip(nnx.Module):
  """A stand-in backbone: [B, T, H, W, 1] -> [B, 2] (the clip's mean and a constant)."""

  feature_dim = 2

  def __call__(self, clips):
    mean = jnp.mean(clips, axis=(1, 2, 3))
    return jnp.concatenate([mean, jnp.ones_like(mean)], axis=1)


def test_moco_v2_with_three_clips_contrasts_each_key_with_its_own_clips_queue():
  args, heads = moco_v2.Args(queue_size=4, num_clips=3), moco_v2.Heads(projector_output_dim=3)
  assert moco_v2.SPEC.views_for(args) == 3
  state = moco_v2.init_method_state(args, heads)
  assert sorted(state) == ["view0", "view1", "view2"]
  model = SSLModel(_MeanOfClip(), {"projector": nnx.Linear(2, 3, rngs=nnx.Rngs(0))})
  rng = np.random.default_rng(0)
  views = [jnp.asarray(rng.uniform(size=(5, 2, 3, 3, 1)), jnp.float32) for _ in range(3)]
  context = StepContext(rng=jax.random.key(0), step=jnp.zeros((), jnp.int32), target=model)
  loss, _, inputs = moco_v2.objective(model, views, state, context, args)
  embeddings = [model.heads["projector"](model.backbone(v)) for v in views]
  queues = [state[f"view{v}"]["embeddings"] for v in range(3)]
  assert float(loss) == pytest.approx(
      float(losses.rho_moco(embeddings, embeddings, queues, args.temperature)), rel=1e-5)
  # Pairing key j with another clip's queue gives another loss.
  assert float(loss) != pytest.approx(float(losses.rho_moco(
      embeddings, embeddings, queues[1:] + queues[:1], args.temperature)), rel=1e-3)
  # Clip v's keys go into queue v (normalised; 5 keys for 4 rows: the newest 4 survive).
  new_state = moco_v2.update_method_state(state, inputs, context, args)
  for v in range(3):
    written = np.asarray(new_state[f"view{v}"]["embeddings"])
    expected = np.asarray(losses.l2_normalize(embeddings[v]))[1:]
    np.testing.assert_allclose(written, expected, rtol=1e-5, atol=1e-6)
  with pytest.raises(ConfigError, match=r"method_args.num_clips=1; need an integer >= 2"):
    moco_v2.Args(num_clips=1).validate()


def test_byol_with_three_clips_predicts_every_other_clips_target():
  # rho-BYOL's objective on clip-shaped views: 3 views (and 3 view configs from the config),
  # each clip's prediction against the two other clips' targets.
  config = tiny_clip_config("byol", {"num_clips": 3})
  assert len(config_lib.view_configs(typed(config))) == 3
  args = byol.Args(num_clips=3)
  rngs = nnx.Rngs(0)
  heads = {"projector": nnx.Linear(2, 3, rngs=rngs), "predictor": nnx.Linear(3, 3, rngs=rngs)}
  model = SSLModel(_MeanOfClip(), heads)
  target = SSLModel(_MeanOfClip(), {"projector": nnx.Linear(2, 3, rngs=nnx.Rngs(1))})
  rng = np.random.default_rng(0)
  views = [jnp.asarray(rng.uniform(size=(5, 2, 3, 3, 1)), jnp.float32) for _ in range(3)]
  context = StepContext(rng=jax.random.key(0), step=jnp.zeros((), jnp.int32), target=target)
  loss, metrics, _ = byol.objective(model, views, {}, context, args)
  predictions = [heads["predictor"](heads["projector"](model.backbone(v))) for v in views]
  targets = [target.heads["projector"](target.backbone(v)) for v in views]
  expected = sum(losses.byol(predictions[i], targets[j]) for i in range(3) for j in range(3)
                 if i != j) / 2
  assert float(loss) == pytest.approx(float(expected), rel=1e-5)
  assert metrics["byol"] == loss
  with pytest.raises(ConfigError, match=r"method_args.num_clips=1; need an integer >= 2"):
    byol.Args(num_clips=1).validate()

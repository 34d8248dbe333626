"""RSPNet: the loss read from the clips' speeds (not from their order), the key it enqueues,
the refusal without clip speeds, the argument checks, and the train step on a clip batch on
1 vs 8 devices (queue and EMA key encoder included)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import clip_step_states, tiny_clip_config
from jax_ssl import losses
from jax_ssl.errors import ConfigError
from jax_ssl.methods import rspnet
from jax_ssl.methods.spec import StepContext


def _context(speeds):
  return StepContext(rng=jax.random.key(0), step=jnp.zeros((), jnp.int32),
                     clip_speeds=jnp.asarray(speeds, jnp.int32))


def test_loss_reads_which_key_has_the_query_speed_from_the_clip_speeds():
  rng = np.random.default_rng(0)
  batch, dim = 6, 4
  query = jnp.asarray(rng.normal(size=(batch, 2 * dim)), jnp.float32)
  keys = jnp.asarray(rng.normal(size=(batch, 2, 2 * dim)), jnp.float32)
  state = {"queue": {"embeddings": jnp.asarray(rng.normal(size=(5, dim)), jnp.float32),
                     "pointer": jnp.zeros((), jnp.int32)}}
  args = rspnet.Args(temperature=0.5, margin=1.0, appearance_weight=0.3, speed_weight=2.0)
  speeds = np.array([[1, 1, 2], [2, 2, 1]] * 3)  # key 0 always at the query's speed
  loss, metrics, inputs = rspnet.embedding_loss({"query": query, "keys": keys}, state,
                                                _context(speeds), args)
  appearance = losses.rspnet_appearance(query[:, :dim], [keys[:, 0, :dim], keys[:, 1, :dim]],
                                        state["queue"]["embeddings"], 0.5)
  speed = losses.rspnet_speed_ranking(query[:, dim:], keys[:, :, dim:],
                                      np.array([[True, False]] * batch), 0.5, 1.0)
  assert float(loss) == pytest.approx(float(0.3 * appearance + 2.0 * speed), rel=1e-6)
  assert metrics["speed_triplets"] == 1.0
  np.testing.assert_array_equal(inputs["keys"], keys[:, 1, :dim])  # the other-speed key
  # The same clips with the two keys swapped in half the videos, and their speeds with them:
  # the same loss, and the other-speed key is still the one enqueued.
  swap = np.array([True, False] * 3)
  swapped_keys = jnp.where(swap[:, None, None], keys[:, ::-1], keys)
  swapped_speeds = np.where(swap[:, None], speeds[:, [0, 2, 1]], speeds)
  loss2, _, inputs2 = rspnet.embedding_loss({"query": query, "keys": swapped_keys}, state,
                                            _context(swapped_speeds), args)
  assert float(loss2) == pytest.approx(float(loss), rel=1e-6)
  np.testing.assert_array_equal(inputs2["keys"], keys[:, 1, :dim])
  # Read as if key 0 had the other speed everywhere, the ranking term changes.
  loss3, _, _ = rspnet.embedding_loss({"query": query, "keys": keys}, state,
                                      _context(speeds[:, [0, 2, 1]]), args)
  assert float(loss3) != pytest.approx(float(loss), rel=1e-3)
  # An image dataset has no clip speeds: one line naming what RSPNet needs.
  with pytest.raises(ConfigError, match="clips.speed_pattern='rspnet'"):
    rspnet.embedding_loss({"query": query, "keys": keys}, state,
                          _context(speeds)._replace(clip_speeds=None), args)


def test_args_refuse_bad_values():
  rspnet.Args().validate()
  for bad, message in (({"margin": -1.0}, "method_args.margin=-1.0; must be >= 0"),
                       ({"speed_weight": -0.5}, "method_args.speed_weight=-0.5; must be >= 0"),
                       ({"temperature": 0.0}, "method_args.temperature=0.0; must be > 0"),
                       ({"queue_size": 0}, "method_args.queue_size=0; need an integer >= 1")):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
      rspnet.Args(**bad).validate()


def test_step_is_the_same_on_1_and_8_devices():
  # Step 2's loss reads the queue step 1 filled and the key encoder step 1 moved: equal
  # losses (and queues) on 1 and 8 devices mean the loss, the queue and the EMA all span the
  # global batch. Speeds as the "rspnet" sampler draws them: query and key 1 at one speed.
  # A 1-block video ViT of 4 tubelets: its step compiles in half the time of the video CNN's
  # (seconds on CPU, twice here); tests/test_video_train.py runs RSPNet with the video CNN
  # (its global-batch BatchNorm included) through the trainer on 1 and 8 devices.
  config = tiny_clip_config("rspnet", {"queue_size": 32, "base_momentum": 0.9},
                            {"projector_output_dim": 8},
                            **{"augment.output_size": 8, "clips.num_frames": 2,
                               "model.backbone": "vit_tiny", "model.depth": 1, "model.dim": 16,
                               "model.num_heads": 2, "model.patch_size": 4,
                               "model.tubelet_size": 2})
  speeds = np.array([[1, 1, 2], [2, 2, 1]] * 8)
  one, state_one = clip_step_states(config, 1, speeds)
  eight, state_eight = clip_step_states(config, 8, speeds)
  for a, b in zip(one, eight):
    for key in ("loss", "rspnet_appearance", "rspnet_speed", "speed_accuracy"):
      assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (key, a, b)
    assert a["speed_triplets"] == 1.0 and a["target_momentum"] == pytest.approx(0.9)
  np.testing.assert_allclose(state_one.method_state["queue"]["embeddings"],
                             state_eight.method_state["queue"]["embeddings"], atol=1e-5)
  # Two steps of 16 videos: 32 keys, the whole queue written, and it wrapped to 0.
  assert int(state_one.method_state["queue"]["pointer"]) == 0
  assert one[0]["loss"] != pytest.approx(one[1]["loss"], rel=1e-4)  # the steps did something

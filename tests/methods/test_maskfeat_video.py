"""MaskFeat on video: each tubelet's HOG target is that of its patch in the tubelet's first frame
(PySlowFast's `_get_hog_label_3d`), the mask is a tube of BEiT blocks, and the objective
scores the masked tubelets of a tiny video ViT."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax import nnx

from conftest import tiny_clip_config, typed
from jax_ssl import config as config_lib
from jax_ssl import hog, masking
from jax_ssl.methods import maskfeat
from jax_ssl.methods.spec import StepContext


def test_video_targets_are_the_first_frame_of_each_tubelet_per_frame_hog():
  rng = np.random.default_rng(0)
  clips = rng.uniform(size=(2, 4, 16, 16, 3)).astype(np.float32)
  targets = np.asarray(hog.maskfeat_video_targets(clips, tubelet_size=2, patch_size=8,
                                                  cell_size=4, orientations=9))
  # 2 slots x 2 x 2 patches; each 3 channels x 2 x 2 cells x 9 bins.
  assert targets.shape == (2, 8, 3 * 4 * 9)
  for b in range(2):
    for slot, frame in enumerate((0, 2)):  # the first frame of tubelets [0, 1] and [2, 3]
      per_frame = np.asarray(hog.maskfeat_targets(clips[b:b + 1, frame], patch_size=8,
                                                  cell_size=4, orientations=9))[0]
      np.testing.assert_allclose(targets[b, slot * 4:(slot + 1) * 4], per_frame, rtol=1e-6)
  # The second frame of a tubelet does not enter its target.
  changed = clips.copy()
  changed[:, 1] = rng.uniform(size=changed[:, 1].shape)
  np.testing.assert_array_equal(targets, hog.maskfeat_video_targets(
      changed, tubelet_size=2, patch_size=8, cell_size=4, orientations=9))
  with pytest.raises(ValueError, match="tubelets of 3"):
    hog.maskfeat_video_targets(clips, tubelet_size=3, patch_size=8, cell_size=4)


def test_objective_scores_the_masked_tubelets_hog():
  # A 1-block video ViT on 4-frame 16 px clips, 2x8x8 tubelets: 2 time slots of 2x2 tokens.
  # With the predictor zeroed the loss is the mean square of the targets of the masked
  # tokens: a tube of BEiT blocks, num_masked(4, 0.5) = 2 positions in both slots.
  config = typed(tiny_clip_config(
      "maskfeat", {"mask_ratio": 0.5, "min_block_patches": 1, "cell_size": 4}, {},
      **{"model.backbone": "vit_tiny", "model.dim": 32, "model.depth": 1,
         "model.num_heads": 2, "model.patch_size": 8, "model.tubelet_size": 2}))
  model = config_lib.build_model(config, 1, 0, num_frames=4)
  predictor = model.heads["predictor"]
  predictor.kernel[...] = jnp.zeros_like(predictor.kernel[...])
  predictor.bias[...] = jnp.zeros_like(predictor.bias[...])
  clips = jnp.asarray(np.random.default_rng(0).uniform(size=(4, 4, 16, 16, 1)), jnp.float32)
  context = StepContext(rng=jax.random.key(3), step=jnp.zeros((), jnp.int32))
  graphdef, state = nnx.split(model)
  loss, _, _ = jax.jit(lambda state, clips: maskfeat.objective(
      nnx.merge(graphdef, state), [clips], {}, context, config.method_args))(state, clips)
  spatial = np.asarray(masking.block_mask(jax.random.key(3), 4, 2, 2, 2, min_block_patches=1))
  mask = np.tile(spatial, (1, 2))  # the same positions in both time slots
  assert (mask.sum(axis=1) == 4).all()
  targets = np.asarray(hog.maskfeat_video_targets(clips, tubelet_size=2, patch_size=8,
                                                  cell_size=4))
  per_token = np.mean(targets**2, axis=-1)
  assert float(loss) == pytest.approx(per_token[mask].mean(), rel=1e-5)

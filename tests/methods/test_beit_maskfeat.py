"""The VQ tokenizer (trained by the trainer, read back frozen by jax_ssl/teachers.py), BEiT
with a saved tokenizer end to end (read by the build step only: it trains on after the
tokenizer's workdir is deleted), the mask-token wiring BEiT and MaskFeat share, and their
steps on 1 vs 8 devices."""

import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

import trainer_subprocess as ts
from conftest import step_losses, tiny_config, typed
from experiments.fashion_mnist import vq_tokenizer as vq_experiment
from jax_ssl.state import split_model
from jax_ssl import config as config_lib
from jax_ssl import teachers, train
from jax_ssl.errors import ConfigError, DataError
from jax_ssl.evaluate.workdir import evaluate_workdir
from jax_ssl.methods import mim

TOKENIZER_STEPS = 40


def tokenizer_config(source_dir, data_dir, **overrides):
  config = vq_experiment.get_config("runlocal")
  config.dataset.update(source_dir=source_dir, data_dir=data_dir)
  config.model.width = 8
  config.heads.update(num_codes=16, code_dim=4, decoder_width=8)
  config.global_batch_size = 32
  config.optimizer.update(base_learning_rate=1e-2, warmup_steps=0)
  config.update_from_flattened_dict({"total_steps": TOKENIZER_STEPS, "log_every_steps": 1,
                                     "checkpoint_every_steps": 100, **overrides})
  return config


@pytest.fixture(scope="module")
def tokenizer_run(fake_fmnist, tmp_path_factory):
  """(workdir, train summary) of a tiny vq_tokenizer run on the fake Fashion-MNIST."""
  workdir = str(tmp_path_factory.mktemp("vq_tokenizer"))
  out = train.train_and_evaluate(tokenizer_config(*fake_fmnist), workdir)
  return workdir, out


def vit_config(method, method_args, **overrides):
  config = tiny_config("unused", "unused", **overrides)
  config.method = method
  config.method_args = ml_collections.ConfigDict(method_args)
  config.heads = ml_collections.ConfigDict({})
  config.model.update(backbone="vit_tiny", patch_size=4, depth=1, dim=16, num_heads=2)
  config.augment.update(crop_scale=(0.5, 1.0), jitter_prob=0.0)
  config.optimizer.update(warmup_steps=0, base_learning_rate=1e-3)
  return config


def test_tokenizer_training_lowers_reconstruction_error_and_reads_back(tokenizer_run):
  workdir, out = tokenizer_run
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert len(records) == TOKENIZER_STEPS
  first = np.mean([r["reconstruction"] for r in records[:3]])
  last = np.mean([r["reconstruction"] for r in records[-3:]])
  assert last < 0.5 * first, (first, last)
  assert all(1.0 <= r["perplexity"] <= 16.0 for r in records)
  assert all(0 < r["codes_used"] <= 1.0 for r in records)

  # The tokenizer read back from the checkpoint is the trained encoder + quantizer: the
  # same ids as the trained model in memory, one per 4x4 patch, within the codebook.
  teacher = teachers.load_vq_tokenizer(workdir)
  tokenizer = nnx.merge(teacher.graphdef, teacher.params)
  images = jax.random.uniform(jax.random.key(0), (5, 28, 28, 1))
  ids = np.asarray(tokenizer(images))
  assert ids.shape == (5, 49) and ids.dtype == np.int32
  assert ids.min() >= 0 and ids.max() < 16
  assert len(np.unique(ids)) > 1
  config = tokenizer_config("unused", "unused")
  model = nnx.merge(*split_model(config_lib.build_model(typed(config), 1, 0))[:1],
                    out["state"].params, out["state"].batch_stats)
  expected = model.heads["quantizer"](model.backbone.feature_map(images))[0].reshape(5, 49)
  np.testing.assert_array_equal(ids, expected)
  assert teacher.info == {"num_codes": 16, "in_channels": 1}


def test_beit_without_a_tokenizer_is_one_line_naming_the_command(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "empty").mkdir()
  command = "python -m jax_ssl.train --config experiments/fashion_mnist/vq_tokenizer.py --workdir"
  for given, what in (("none", "does not exist"), ("empty", "has no config.json")):
    config = vit_config("beit", {"tokenizer_workdir": given, "mask_ratio": 0.4,
                                 "min_block_patches": 4})
    with pytest.raises(DataError) as info:
      config_lib.build_method(typed(config))  # the build step reads the teacher, not the method
    assert str(info.value) == (f"method_args.tokenizer_workdir={tmp_path / given} {what}: train "
                               f"the tokenizer first with {command} {tmp_path / given}")
  config = vit_config("beit", {"mask_ratio": 0.4, "min_block_patches": 4})
  with pytest.raises(DataError, match="^method_args.tokenizer_workdir is not set; train a "
                     "tokenizer with python -m jax_ssl.train"):
    config_lib.build_method(typed(config))


def test_beit_cli_takes_paths_relative_to_the_current_directory(tokenizer_run, fake_fmnist,
                                                                 tmp_path, monkeypatch):
  """The docstring's two commands, run from another directory with relative paths: BEiT
  trains (Orbax's metadata call returned None for a relative tokenizer_workdir), its
  config.json holds absolute paths, and it evaluates from yet another directory."""
  here = tmp_path / "project"
  here.mkdir()
  relative = {"method_args.tokenizer_workdir": os.path.relpath(tokenizer_run[0], here),
              "dataset.data_dir": os.path.relpath(fake_fmnist[1], here),
              "dataset.source_dir": os.path.relpath(fake_fmnist[0], here)}
  overrides = {**relative, "total_steps": 2, "evaluate": False, "global_batch_size": 16,
               "log_every_steps": 1, "model.dim": 16, "model.depth": 1}
  proc = subprocess.run(
      [sys.executable, "-m", "jax_ssl.train", "--config",
       os.path.join(ts.ROOT, "experiments/fashion_mnist/beit.py:runlocal"),
       "--workdir", "runs/beit"] + [f"--config.{k}={v}" for k, v in overrides.items()],
      cwd=here, env={**os.environ, "PYTHONPATH": ts.ROOT, "JAX_PLATFORMS": "cpu"},
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  saved = json.load(open(here / "runs" / "beit" / "config.json"))
  assert saved["method_args"]["tokenizer_workdir"] == tokenizer_run[0]
  assert (saved["dataset"]["data_dir"], saved["dataset"]["source_dir"]) == (fake_fmnist[1],
                                                                             fake_fmnist[0])
  monkeypatch.chdir(tmp_path)
  results = evaluate_workdir("project/runs/beit", protocol_names="knn", report=False)
  assert results["steps"] == 2 and 0 <= results["knn_top1"] <= 1


def test_beit_trains_end_to_end_with_a_saved_tokenizer(tokenizer_run, fake_fmnist, tmp_path,
                                                       monkeypatch):
  """Through the trainer, with the tokenizer run deleted right after the build step read it
  (issue 27 item 3: the method reads no files; its teacher is handed in): the run trains,
  checkpoints and keeps the teacher's parameters in its method state."""
  workdir, _ = tokenizer_run
  copy = str(tmp_path / "tokenizer")
  shutil.copytree(workdir, copy)
  build_method = config_lib.build_method

  def build_then_delete_the_tokenizer(config):
    built = build_method(config)
    shutil.rmtree(copy)
    return built

  monkeypatch.setattr(config_lib, "build_method", build_then_delete_the_tokenizer)
  config = vit_config("beit", {"tokenizer_workdir": copy, "mask_ratio": 0.4,
                               "min_block_patches": 4}, total_steps=4, checkpoint_every_steps=2)
  config.dataset.update(source_dir=fake_fmnist[0], data_dir=fake_fmnist[1])
  out = train.train_and_evaluate(config, str(tmp_path / "beit"))
  assert not os.path.exists(copy)
  records = [json.loads(line) for line in open(tmp_path / "beit" / "metrics.jsonl")]
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  # Cross-entropy over the 16 codes starts near log(16) (a near-zero initial head).
  assert records[0]["beit"] == pytest.approx(np.log(16), abs=0.1)
  assert all(0 <= r["token_accuracy"] <= 1 for r in records)
  # The frozen tokenizer rode along in the method state unchanged: equal to the saved one.
  saved = teachers.load_vq_tokenizer(workdir).params
  for got, want in zip(jax.tree.leaves(out["state"].method_state["tokenizer"]),
                       jax.tree.leaves(saved)):
    np.testing.assert_array_equal(got, want)
  assert int(out["state"].step) == 4


def test_a_tokenizer_of_another_patch_size_is_refused_when_the_heads_are_made(tokenizer_run):
  """One line from the build step, before any step runs (it used to be raised while the
  objective was traced)."""
  workdir, _ = tokenizer_run
  config = vit_config("beit", {"tokenizer_workdir": workdir, "mask_ratio": 0.4,
                               "min_block_patches": 4})
  config.model.patch_size = 7  # 16 patches of a 28 px view; the tokenizer gives 49 ids
  with pytest.raises(ConfigError) as info:
    config_lib.build_model(typed(config), 1, 0)
  assert str(info.value) == (
      f"the tokenizer in method_args.tokenizer_workdir={workdir!r} gives 49 ids per image, the "
      f"ViT has 16 patches; train the tokenizer with model.patch_size=7 on 28 px views")


def test_masked_patches_reach_the_encoder_only_as_the_mask_token():
  config = vit_config("maskfeat", {"mask_ratio": 0.4, "min_block_patches": 4, "cell_size": 2,
                                   "orientations": 9})
  model = config_lib.build_model(typed(config), 1, 0)
  images = jax.random.uniform(jax.random.key(1), (2, 28, 28, 1))
  mask, masked = mim.block_mask(jax.random.key(2), model.backbone, 2, mask_ratio=0.4,
                                min_block_patches=4)
  assert masked.shape == (2, 20)  # 49 - int(49 * 0.6)
  np.testing.assert_array_equal(np.asarray(mask).sum(1), 20)
  encode = nnx.jit(mim.encode_masked)
  encoded = encode(model, images, mask)
  # Repaint every masked patch: nothing the encoder outputs changes, anywhere.
  pixel_mask = np.repeat(np.repeat(np.asarray(mask).reshape(2, 7, 7), 4, 1), 4, 2)[..., None]
  repainted = jnp.where(pixel_mask, 1.0 - images, images)
  np.testing.assert_allclose(encode(model, repainted, mask), encoded, atol=1e-6)
  # Repaint one visible patch instead: the outputs change.
  visible = int(np.flatnonzero(~np.asarray(mask)[0])[0])
  row, col = divmod(visible, 7)
  changed = images.at[0, 4 * row:4 * row + 4, 4 * col:4 * col + 4].set(0.5)
  assert np.abs(np.asarray(encode(model, changed, mask) - encoded)).max() > 1e-3


@pytest.mark.parametrize("method", ["maskfeat", "beit", "vq_tokenizer"])
def test_step_is_the_same_on_1_and_8_devices(method, tokenizer_run):
  args = {"mask_ratio": 0.4, "min_block_patches": 4}
  if method == "vq_tokenizer":
    config = tokenizer_config("unused", "unused", global_batch_size=16)
  else:
    args.update({"cell_size": 2, "orientations": 9} if method == "maskfeat"
                else {"tokenizer_workdir": tokenizer_run[0]})
    config = vit_config(method, args, global_batch_size=16)
  config.optimizer.base_learning_rate = 1e-2
  one, eight = step_losses(config, 1), step_losses(config, 8)
  for a, b in zip(one, eight):
    for key in ("loss", "grad_norm"):
      assert a[key] == pytest.approx(b[key], rel=1e-5), (key, a, b)
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-3)  # the steps did something


def test_maskfeat_normalization_is_checked_in_one_line():
  config = vit_config("maskfeat", {"cell_size": 2, "normalization": "block"})
  with pytest.raises(ConfigError, match=r"method_args.normalization='block'; use one of "
                                        r"\('cell', 'patch'\)"):
    config_lib.build_model(typed(config), 1, 0)

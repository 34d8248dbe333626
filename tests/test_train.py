import json
import os

import jax
import numpy as np
import tensorflow_datasets as tfds

from conftest import tiny_config
from experiments.cifar10 import simclr_resnet18
from jax_ssl import train


def test_one_step_under_mock_cifar10(tmp_path):
  config = simclr_resnet18.get_config("runlocal")
  config.model.width = 4
  config.total_steps = 1
  config.eval.update(train_limit=64, test_limit=32, batch_size=32, knn_k=5)
  with tfds.testing.mock_data(num_examples=64):
    out = train.train_and_evaluate(config, str(tmp_path))
  assert out["step"] == 1 and int(out["state"].step) == 1
  (record,) = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert record["step"] == 1 and np.isfinite(record["loss"])
  assert record["loss"] > 0 and record["learning_rate"] >= 0 and record["images_per_second"] > 0
  results = json.load(open(tmp_path / "results.json"))
  assert results["method"] == "simclr" and results["dataset"] == "cifar10" and results["steps"] == 1
  for scores in (results, results["baselines"]["raw_pixels"], results["baselines"]["random_init"]):
    for key in ("knn_top1", "linear_top1", "linear_1pct_top1"):
      assert 0.0 <= scores[key] <= 1.0


def test_training_lowers_the_loss_and_moves_every_parameter(fake_fmnist, tmp_path):
  config = tiny_config(*fake_fmnist, total_steps=40, checkpoint_every_steps=100)
  config.optimizer.base_learning_rate = 4e-3
  initial = train.config_lib.build_model(config, 1, config.seed)
  out = train.train_and_evaluate(config, str(tmp_path))
  losses = [json.loads(l)["loss"] for l in open(tmp_path / "metrics.jsonl")]
  assert len(losses) == 40
  # NT-Xent of an untrained net on 2x32 views is about log(63) = 4.14.
  assert abs(losses[0] - np.log(63)) < 0.3
  assert np.mean(losses[-5:]) < losses[0] - 0.3
  before = jax.tree.leaves(train.split_model(initial)[1])
  after = jax.tree.leaves(out["state"].params)
  assert all(not np.allclose(a, b) for a, b in zip(before, after))
  assert os.path.isdir(tmp_path / "tensorboard") and os.listdir(tmp_path / "tensorboard")

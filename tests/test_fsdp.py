"""FSDP (`config.sharding="fsdp"`, jax_ssl/sharding.py and state.py): big_vision's rule, the
config's one-line refusals, and on 8 CPU devices the same losses as a replicated state for a
ViT method (MAE) and a ResNet with BatchNorm (SimCLR, its views' passes per device), about
1/8 of the state per device, and checkpoints that restore across strategies, meshes, device
counts and process counts.

The MAE runs share one replicated reference of 6 steps (checkpoints at 3 and 6), run in this
process on its 8 devices; each other run logs its losses (relative 1e-5): FSDP from scratch
(1 process, then 2 processes x 4 devices), and FSDP on a 2-D mesh of 4 devices resumed from
the reference's step-3 checkpoint (its step-6 checkpoint deleted, so the same schedule
continues). The FSDP run's sharded step-3 checkpoint is read back replicated.
"""

import json
import os
import shutil
import socket

import jax
import ml_collections
import numpy as np
import optax
import pytest

import trainer_subprocess as ts
from conftest import tiny_config, typed
from experiments.fashion_mnist import mae
from jax_ssl import checkpoint, methods, sharding, train
from jax_ssl import config as config_lib
from jax_ssl.config import load as config_load
from jax_ssl.errors import ConfigError
from jax_ssl.state import SHARDED_FIELDS, create_train_state, state_shardings

STEPS = 6
MAE_FILE = os.path.join(ts.ROOT, "experiments/fashion_mnist/mae.py")


def _mae_overrides(source_dir, data_dir, **extra):
  """MAE's runlocal (a 2-block ViT, a 1-block decoder) 64 wide (most bytes in arrays above
  512 bytes) at batch 32, as flags."""
  return {"dataset.source_dir": source_dir, "dataset.data_dir": data_dir,
          "model.dim": 64, "heads.decoder_dim": 64, "global_batch_size": 32,
          "total_steps": STEPS, "log_every_steps": 1, "checkpoint_every_steps": 3,
          "evaluate": False, **extra}


def _mae_config(overrides):
  """The config the trainer builds from `--config mae.py:runlocal` and these flags."""
  return config_load.apply_overrides(mae.get_config("runlocal"),
                                     [(k, str(v)) for k, v in overrides.items()])


def _mae_args(workdir, overrides):
  return ["--config", f"{MAE_FILE}:runlocal", "--workdir", str(workdir)] + [
      f"--config.{k}={v}" for k, v in overrides.items()]


def _assert_losses(workdir, reference, steps):
  got = ts.losses(workdir)
  assert sorted(got) == list(steps), sorted(got)
  for step in steps:
    assert got[step] == pytest.approx(reference[step], rel=1e-5), (workdir, step)


def _restart_from_step_3(workdir):
  """The workdir as if stopped after step 3: its step-6 checkpoint (and results) removed."""
  shutil.rmtree(os.path.join(workdir, "checkpoints", str(STEPS)))
  if os.path.exists(os.path.join(workdir, "results.json")):
    os.remove(os.path.join(workdir, "results.json"))


@pytest.fixture(scope="module")
def mae_reference(fake_fmnist, tmp_path_factory):
  """(workdir, {step: loss}) of the replicated MAE run (in this process: 8 devices)."""
  workdir = tmp_path_factory.mktemp("mae_replicated")
  train.train_and_evaluate(_mae_config(_mae_overrides(*fake_fmnist)), str(workdir))
  return workdir, ts.losses(workdir)


def test_fsdp_rule_is_big_vision_s():
  spec = lambda shape, min_bytes=0: sharding.fsdp_spec(shape, 4, "data", 8, min_bytes)
  P = jax.sharding.PartitionSpec
  assert spec((32, 128)) == P(None, "data")  # the largest dimension
  assert spec((128, 12)) == P("data")
  assert spec((36, 24)) == P(None, "data")  # 36 is not divisible by 8: the next largest
  assert spec((64, 64)) == P(None, "data")  # a tie: the last (big_vision's argsort order)
  assert spec((30, 5)) == P()  # nothing divisible: replicated
  assert spec(()) == P()
  assert spec((1024, 1024), min_bytes=4 * 2**20) == P()  # 4 MiB exactly: not above
  assert spec((1024, 1025 * 8), min_bytes=4 * 2**20) == P(None, "data")
  mesh = sharding.make_mesh(shape=(2, -1))
  assert dict(mesh.shape) == {"data": 2, "fsdp": 4} and sharding.fsdp_axis(mesh) == "fsdp"
  assert sharding.batch_sharding(mesh).spec == P(("data", "fsdp"))
  shardings = sharding.tree_shardings({"w": jax.ShapeDtypeStruct((16, 4), np.float32)}, mesh,
                                      "fsdp", min_bytes=0)
  assert shardings["w"].spec == P("fsdp")


def test_ema_targets_and_optimizer_moments_are_sharded_as_their_parameters():
  config = tiny_config("unused", "unused", method="byol", fsdp_min_bytes=0)
  config.method_args = ml_collections.ConfigDict({"base_momentum": 0.9})
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=16, projector_output_dim=8, projector_num_layers=2,
      predictor_hidden_dim=8))
  spec = methods.get_method("byol")
  abstract = jax.eval_shape(lambda: create_train_state(
      config_lib.build_model(typed(config), 1, 0), config_lib.build_optimizer(typed(config))[0],
      config_lib.init_method_state(typed(config)), spec.target_modules)[1])
  shardings = state_shardings(abstract, sharding.make_mesh(), "fsdp", min_bytes=0)
  params = {jax.tree_util.keystr(p): s.spec for p, s in
            jax.tree_util.tree_flatten_with_path(shardings.params)[0]}
  targets = jax.tree_util.tree_flatten_with_path(shardings.target_params)[0]
  assert targets and any(s.spec for _, s in targets)
  for path, s in targets:  # the same paths as the online modules they follow
    assert s.spec == params[jax.tree_util.keystr(path)], path
  for moment in ("mu", "nu"):  # AdamW's moments have their parameter's shape and sharding
    assert [s.spec for s in jax.tree.leaves(optax.tree_utils.tree_get(
        shardings.opt_state, moment))] == list(params.values()), moment
  for field in ("step", "batch_stats", "method_state", "target_batch_stats"):
    assert all(s.spec == jax.sharding.PartitionSpec()
               for s in jax.tree.leaves(getattr(shardings, field))), field


@pytest.mark.parametrize("overrides, message", [
    ({"sharding": "zero3"}, "sharding='zero3'; use 'replicated' (every device holds the whole "
                            "train state) or 'fsdp'"),
    ({"sharding": "fsdp", "mesh_shape": (3, -1)},
     "mesh_shape=(3, -1) does not divide the 8 devices; use (data, fsdp) sizes whose product "
     "is 8, e.g. (1, 8) or (2, 4)"),
    ({"sharding": "fsdp", "mesh_shape": (2, 2)}, "mesh_shape=(2, 2) covers 4 of the 8 devices"),
    ({"mesh_shape": (2, 4)}, "mesh_shape=(2, 4) needs sharding='fsdp'"),
    ({"sharding": "fsdp", "fsdp_min_bytes": -1}, "fsdp_min_bytes=-1; must be >= 0"),
])
def test_bad_sharding_config_is_one_line(overrides, message):
  config = tiny_config("unused", "unused")
  config.update(overrides)
  with pytest.raises(ConfigError) as info:
    config_lib.validate(typed(config), device_count=8)
  assert str(info.value).startswith(message) and "\n" not in str(info.value), str(info.value)


def test_mae_fsdp_equals_replicated_holds_an_eighth_and_its_checkpoint_reads_replicated(
    fake_fmnist, tmp_path, mae_reference):
  reference_dir, reference = mae_reference
  # 512 bytes: the biases and LayerNorm parameters of this small ViT stay replicated, the
  # kernels (4-64 KiB) are split. The trained state is evaluated (kNN) as it is.
  overrides = _mae_overrides(*fake_fmnist, sharding="fsdp", fsdp_min_bytes=512,
                             evaluate=True, **{"eval.protocols": "knn"})
  out = train.train_and_evaluate(_mae_config(overrides), str(tmp_path))
  _assert_losses(tmp_path, reference, range(1, STEPS + 1))
  assert 0 <= json.load(open(tmp_path / "results.json"))["knn_top1"] <= 1

  # Per device: the shards of device 0 (each device holds one shard of every array).
  state = out["state"]
  for field in SHARDED_FIELDS[:2]:  # MAE has no EMA target
    arrays = jax.tree.leaves(getattr(state, field))
    whole = sum(x.nbytes for x in arrays)
    local = sum(x.addressable_shards[0].data.nbytes for x in arrays)
    assert 7.2 < whole / local <= 8, (field, whole / local)
    for x in arrays:  # exactly the arrays above the threshold are split, 8 ways
      shards = {s.data.shape for s in x.addressable_shards}
      assert len(x.addressable_shards) == 8 and len(shards) == 1
      assert (shards.pop() != x.shape) == (x.nbytes > 512), (x.shape, x.sharding.spec)
  assert all(x.sharding.is_fully_replicated for x in jax.tree.leaves(state.batch_stats))

  # Its step-3 checkpoint (written sharded) read into a replicated state: the replicated
  # run's step-3 checkpoint (the other direction, continuing to train: the next test).
  replicated = checkpoint.abstract_like(state, sharding.replicated(sharding.make_mesh()))
  restored = [checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), keep=2,
                                      save_every_steps=3).restore_state(3, replicated)
              for workdir in (tmp_path, reference_dir)]
  assert int(restored[0].step) == 3
  for got, want in zip(jax.tree.leaves(restored[0]), jax.tree.leaves(restored[1])):
    assert got.sharding.is_fully_replicated
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_replicated_checkpoint_resumes_as_fsdp_on_4_devices_with_a_2d_mesh(
    fake_fmnist, tmp_path, mae_reference):
  reference_dir, reference = mae_reference
  workdir = tmp_path / "run"
  shutil.copytree(reference_dir, workdir)
  _restart_from_step_3(workdir)
  rerun = ts.run(_mae_args(workdir, _mae_overrides(
      *fake_fmnist, sharding="fsdp", mesh_shape="(2,2)", fsdp_min_bytes=0)), devices=4)
  assert "fsdp: train state" in rerun.stdout and "{'data': 2, 'fsdp': 2}" in rerun.stdout
  assert f"resumed from step 3 of {STEPS}" in rerun.stdout
  _assert_losses(workdir, reference, range(1, STEPS + 1))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_of_4_devices_under_fsdp_equal_one_process(fake_fmnist, tmp_path,
                                                                  mae_reference):
  _, reference = mae_reference  # 8 devices of one process (the FSDP run above equals it)
  address = f"127.0.0.1:{_free_port()}"
  args = _mae_args(tmp_path, _mae_overrides(*fake_fmnist, sharding="fsdp", fsdp_min_bytes=0))
  procs = [ts.run(args + [f"--coordinator_address={address}", "--num_processes=2",
                          f"--process_id={pid}"], devices=4, wait=False) for pid in range(2)]
  for proc in procs:
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-5000:]
  _assert_losses(tmp_path, reference, range(1, STEPS + 1))  # process 1 logged nothing


def test_simclr_with_batchnorm_fsdp_equals_replicated(fake_fmnist, tmp_path):
  losses = {}
  for strategy in ("replicated", "fsdp"):
    # Two views, no local crops: their passes still run per device (shard_map over `data`,
    # the sharded parameters gathered into it).
    config = tiny_config(*fake_fmnist, total_steps=3, checkpoint_every_steps=100,
                         sharding=strategy, fsdp_min_bytes=0)
    config.augment.local_crops.num = 0
    out = train.train_and_evaluate(config, str(tmp_path / strategy))
    losses[strategy] = ts.losses(tmp_path / strategy)
    split = [not x.sharding.is_fully_replicated for x in jax.tree.leaves(out["state"].params)]
    assert any(split) == (strategy == "fsdp")
  assert sorted(losses["fsdp"]) == [1, 2, 3]
  for step, loss in losses["replicated"].items():
    assert losses["fsdp"][step] == pytest.approx(loss, rel=1e-5), step

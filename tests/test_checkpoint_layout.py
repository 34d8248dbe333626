"""Checkpoints of another train-state layout (jax_ssl/checkpoint.py): an older checkpoint
that predates a field is filled in and resumes; one of another layout is refused in one
line and left in place, never moved aside as corrupt."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import tiny_config, typed
from jax_ssl import checkpoint, methods, sharding
from jax_ssl import config as config_lib
from jax_ssl.methods.spec import select_modules
from jax_ssl.state import create_train_state


def _byol_state():
  config = tiny_config("unused", "unused")
  config.method = "byol"
  config.method_args = ml_collections.ConfigDict({"base_momentum": 0.9})
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=16, projector_output_dim=8, projector_num_layers=2,
      predictor_hidden_dim=8))
  config = typed(config)
  spec = methods.get_method(config.method)
  model = config_lib.build_model(config, 1, config.seed)
  optimizer, _ = config_lib.build_optimizer(config)
  _, state = create_train_state(model, optimizer, config_lib.init_method_state(config),
                                spec.target_modules)
  # Distinct values everywhere, so a wrong fill cannot pass by accident.
  leaves, treedef = jax.tree.flatten(state)
  leaves = [x + jnp.asarray(0.01 * (i + 1), x.dtype) if jnp.issubdtype(x.dtype, jnp.floating)
            else x for i, x in enumerate(leaves)]
  return spec, jax.tree.unflatten(treedef, leaves)


def _save(directory, step, tree):
  manager = ocp.CheckpointManager(directory, item_handlers={"state": ocp.StandardCheckpointHandler()})
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(tree)))
  manager.wait_until_finished()
  manager.close()


def test_a_checkpoint_before_target_batch_stats_resumes_with_the_online_statistics(tmp_path):
  spec, state = _byol_state()
  directory = str(tmp_path / "checkpoints")
  older = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)
           if f.name != "target_batch_stats"}
  _save(directory, 5, older)
  abstract = checkpoint.abstract_like(state, sharding.replicated(sharding.make_mesh()))
  restored = checkpoint.Checkpointer(directory, keep=2, save_every_steps=5).restore_state(
      5, abstract)
  online = select_modules(state.batch_stats, spec.target_modules, missing_ok=True)
  assert len(jax.tree.leaves(restored.target_batch_stats)) == len(jax.tree.leaves(online)) > 0
  for got, want in zip(jax.tree.leaves(restored.target_batch_stats), jax.tree.leaves(online)):
    np.testing.assert_array_equal(got, want)
  for got, want in zip(jax.tree.leaves(restored.params), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(got, want)


def test_a_checkpoint_of_another_layout_is_refused_in_one_line_and_kept(tmp_path):
  _, state = _byol_state()
  directory = str(tmp_path / "checkpoints")
  other = state.replace(method_state={"queue": jnp.zeros((4, 8))})
  _save(directory, 5, other)
  abstract = checkpoint.abstract_like(state, sharding.replicated(sharding.make_mesh()))
  checkpointer = checkpoint.Checkpointer(directory, keep=2, save_every_steps=5)
  with pytest.raises(checkpoint.CheckpointLayoutError) as error:
    checkpointer.restore_latest(abstract, data_iterator=None)
  message = str(error.value)
  assert "\n" not in message
  assert message.startswith(f"checkpoint {os.path.join(directory, '5')} holds a train state of "
                            f"another layout (method_state.queue: not expected)")
  assert "use a new --workdir (the checkpoint is left as it is)" in message
  assert os.path.isdir(os.path.join(directory, "5"))  # not moved to checkpoints_corrupt
  assert not os.path.exists(f"{directory}_corrupt")
  # A field of another shape names both shapes.
  reshaped = str(tmp_path / "reshaped")
  name = "backbone.blocks.0.conv1.kernel.value"
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: jnp.zeros((5, 5, 4, 4)) if ".".join(
          checkpoint._key_name(k) for k in path) == name else x, state.params)
  _save(reshaped, 3, state.replace(params=params))
  with pytest.raises(checkpoint.CheckpointLayoutError,
                     match=r"params\.backbone\.blocks\.0\.conv1\.kernel\.value: saved "
                           r"\(5, 5, 4, 4\), expected \(3, 3, 4, 4\)"):
    checkpoint.Checkpointer(reshaped, keep=2, save_every_steps=5).restore_state(3, abstract)

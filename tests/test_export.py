"""`python -m jax_ssl.export` and `jax_ssl.load_backbone` (jax_ssl/export.py, backbone.py):
BYOL's train state checkpointed at two steps, exported (safetensors, msgpack, --teacher,
--step) and loaded in a fresh process without the trainer's dependencies, gives the
evaluation's features; one-line errors; the torchvision layout (names, shapes and the round
trip; against torchvision's resnet50 itself, features included, where torch is installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import trainer_subprocess as ts
from conftest import tiny_byol_config, typed
from jax_ssl import backbone, export, methods, sharding
from jax_ssl import config as config_lib
from jax_ssl.errors import UserInputError
from jax_ssl.evaluate import run as evaluate_run
from jax_ssl.state import create_train_state, encoder_weights, split_model

# The extras' modules a user's process loading a backbone must not need (test_packaging.py's
# list): the trainer, Orbax, TFDS, grain, ml_collections.
_TRAINER_MODULES = ("tensorflow_datasets", "tensorflow", "grain", "array_record", "orbax",
                    "ml_collections", "tensorboardX", "tqdm", "PIL", "matplotlib", "sklearn")


def _images(count: int = 16) -> np.ndarray:
  return np.random.default_rng(3).integers(0, 256, (count, 28, 28, 1), dtype=np.uint8)


def _byol_config(workdir):
  return typed(tiny_byol_config(str(workdir / "unused"), str(workdir / "unused"), total_steps=2))


def _filled(abstract, seed: int, step: int):
  """Concrete arrays for an abstract TrainState: random weights (BatchNorm variances
  positive), zero counters, the given step."""
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    if not jnp.issubdtype(leaf.dtype, jnp.floating):
      return jnp.zeros(leaf.shape, leaf.dtype)
    values = rng.standard_normal(leaf.shape) * 0.2
    if "var" in jax.tree_util.keystr(path):
      values = np.abs(values) + 0.5
    return jnp.asarray(values, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, abstract).replace(step=jnp.asarray(step, jnp.int32))


@pytest.fixture(scope="module")
def byol_run(tmp_path_factory):
  """(workdir, graphdef, config, {step: TrainState}): BYOL's TrainState (the trainer's
  layout: `create_train_state` of the config's model, EMA target and its statistics
  included) at steps 1 and 2, with distinct random values (the target unlike the online
  network, step 1 unlike step 2), saved as the trainer saves it (DIR/config.json,
  DIR/checkpoints/<step>/state, Orbax). Not trained, for time: compiling the model's
  initialisation and train step took 27 s of this test's 34 s under load, and the export
  reads neither the data, the iterator nor the optimizer state."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp("byol_run")
  config = _byol_config(workdir)
  (workdir / "config.json").write_text(json.dumps(config.to_dict()))
  spec = methods.get_method(config.method)
  optimizer, _ = config_lib.build_optimizer(config)
  graphdef, params, batch_stats = split_model(
      nnx.eval_shape(lambda: config_lib.build_model(config, 1, config.seed)))
  abstract = jax.eval_shape(
      lambda p, b: create_train_state(nnx.merge(graphdef, p, b), optimizer,
                                      config_lib.init_method_state(config),
                                      spec.target_modules)[1], params, batch_stats)
  manager = ocp.CheckpointManager(str(workdir / "checkpoints"),
                                  item_handlers={"state": ocp.StandardCheckpointHandler()})
  states = {step: _filled(abstract, seed=step, step=step) for step in (1, 2)}
  for step, state in states.items():
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
  manager.wait_until_finished()
  manager.close()
  return workdir, graphdef, config, states


def _evaluation_features(byol, images: np.ndarray) -> dict[tuple[str, int], np.ndarray]:
  """{(encoder, step): the features the evaluation computes (evaluate/run.py's encoder: the
  centre view, jit over the mesh) with the training process's weights}."""
  _, graphdef, config, states = byol
  encode = evaluate_run.make_encoder(graphdef, sharding.make_mesh(), config.augment.output_size,
                                     config.eval.crop_fraction)
  return {(encoder, step): np.asarray(encode(*encoder_weights(states[step], encoder))(images))
          for encoder, step in (("online", 2), ("target", 2), ("online", 1))}


# A fresh process in which the trainer's dependencies cannot be imported (None in sys.modules
# makes `import orbax` fail and importlib.util.find_spec report it absent, as if not installed).
_LOAD_SCRIPT = """
import sys
for name in {blocked!r}:
  sys.modules[name] = None
import numpy as np
from flax import nnx
import jax_ssl
images = np.load(sys.argv[1]).astype(np.float32) / 255  # the sidecar's input: [0, 1], NHWC
out = {{}}
for i, name in enumerate(sys.argv[3:]):
  module = jax_ssl.load_backbone(name)
  out[str(i)] = np.asarray(nnx.jit(lambda m, x: m(x))(module, images))
np.savez(sys.argv[2], **out)
"""


def test_exported_backbones_give_the_evaluation_features_in_a_fresh_process(byol_run, tmp_path):
  workdir, _, config, states = byol_run
  # The command line (a real process), then the same function in-process for the others.
  proc = subprocess.run(
      [sys.executable, "-m", "jax_ssl.export", "--workdir", str(workdir), "--out",
       str(tmp_path / "online.safetensors")],
      env={**os.environ, "PYTHONPATH": ts.ROOT, "JAX_PLATFORMS": "cpu"},
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith("exported the online encoder of byol (step 2; resnet_small,")
  exports = {"online.safetensors": ("online", 2)}
  for name, teacher, step in (("online.msgpack", False, None), ("teacher.safetensors", True, None),
                              ("step1.msgpack", False, 1)):
    info = export.export_backbone(str(workdir), str(tmp_path / name),
                                  weights_format=name.split(".")[1], teacher=teacher, step=step)
    exports[name] = (info["encoder"], info["step"])
  assert exports == {"online.safetensors": ("online", 2), "online.msgpack": ("online", 2),
                     "teacher.safetensors": ("target", 2), "step1.msgpack": ("online", 1)}

  sidecar = json.loads((tmp_path / "teacher.safetensors.json").read_text())
  assert sidecar["architecture"] == {"backbone": "resnet_small", "in_channels": 1, "width": 4,
                                     "stem": "cifar", "final_features": 0, "dtype": "float32"}
  assert (sidecar["method"], sidecar["encoder"], sidecar["step"]) == ("byol", "target", 2)
  assert sidecar["workdir"] == str(workdir) and sidecar["config"]["method"] == "byol"
  assert sidecar["jax_ssl_version"] and sidecar["weights"] == {"file": "teacher.safetensors",
                                                               "format": "safetensors"}
  assert sidecar["input"]["image_size"] == 28 and sidecar["input"]["range"] == [0.0, 1.0]
  assert sidecar["feature_dim"] == 32
  # The backbone only (no projector or predictor), and the teacher's weights are the EMA
  # target's of step 2 bit for bit (not the online ones, not the target's initial copy).
  weights = backbone.load_weights(tmp_path / "teacher.safetensors")
  target = dict(zip(*_flat(states[2].target_params["backbone"],
                           states[2].target_batch_stats["backbone"])))
  assert set(weights) == set(target) and "stem_bn.mean" in weights
  for key, value in weights.items():
    np.testing.assert_array_equal(value, target[key], err_msg=key)

  images = np.random.default_rng(3).integers(0, 256, (16, 28, 28, 1), dtype=np.uint8)
  np.save(tmp_path / "images.npy", images)
  names = list(exports)
  loaded = subprocess.run(
      [sys.executable, "-c", _LOAD_SCRIPT.format(blocked=_TRAINER_MODULES),
       str(tmp_path / "images.npy"), str(tmp_path / "features.npz"),
       *[str(tmp_path / n) for n in names]],
      env={**os.environ, "PYTHONPATH": ts.ROOT, "JAX_PLATFORMS": "cpu"},
      capture_output=True, text=True, timeout=300)
  assert loaded.returncode == 0, loaded.stderr[-3000:]
  features = np.load(tmp_path / "features.npz")
  expected = _evaluation_features(byol_run, images)
  for i, name in enumerate(names):
    np.testing.assert_allclose(features[str(i)], expected[exports[name]], rtol=1e-5, atol=1e-6,
                               err_msg=name)
  online, teacher, first = expected["online", 2], expected["target", 2], expected["online", 1]
  assert np.max(np.abs(online - teacher)) > 1e-3 and np.max(np.abs(online - first)) > 1e-3


def _flat(params, batch_stats) -> tuple[list[str], list[np.ndarray]]:
  """Dotted keys and arrays of a module's parameter and statistics states."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  keys, values = [], []
  for tree in (params, batch_stats):
    for path, variable in nnx.to_flat_state(tree):
      keys.append(".".join(map(str, path)))
      values.append(np.asarray(variable.get_value()))
  return keys, values


def _error_line(argv) -> str:
  with pytest.raises(SystemExit) as info:
    export.main(argv)
  message = str(info.value.code)
  assert message.startswith("error: ") and "\n" not in message, message
  return message


def test_one_line_errors(byol_run, tmp_path, monkeypatch):
  byol_run = byol_run[0]
  out = ["--out", str(tmp_path / "b.safetensors")]
  run = ["--workdir", str(byol_run)]
  assert _error_line(["--workdir", str(tmp_path / "missing"), *out]) == (
      f"error: {tmp_path}/missing/config.json not found: --workdir must be a directory "
      f"written by jax_ssl.train")
  untrained = tmp_path / "untrained"
  untrained.mkdir()
  (untrained / "config.json").write_text((byol_run / "config.json").read_text())
  assert _error_line(["--workdir", str(untrained), *out]).startswith(
      f"error: no checkpoint in {untrained}/checkpoints; train first")
  assert _error_line([*run, *out, "--format", "onnx"]).startswith(
      "error: argument --format: invalid choice: 'onnx'")
  assert "(it has [1, 2])" in _error_line([*run, *out, "--step", "7"])
  assert _error_line([*run, *out, "--format", "torchvision"]).startswith(
      "error: --format torchvision: model.backbone='resnet_small' has no torchvision counterpart")
  simclr = tmp_path / "simclr"
  simclr.mkdir()
  saved = json.loads((byol_run / "config.json").read_text())
  (simclr / "config.json").write_text(json.dumps(
      {**saved, "method": "simclr", "method_args": {}, "heads": {}}))  # simclr's defaults
  assert _error_line(["--workdir", str(simclr), *out, "--teacher"]).startswith(
      "error: --teacher: simclr has no EMA target of its backbone (methods with one: byol, cnn_jepa, "
      "data2vec2, dino")
  # Without the [export] extra: one line naming it, for exporting and for loading.
  export.export_backbone(str(byol_run), str(tmp_path / "b.msgpack"), weights_format="msgpack")
  export.export_backbone(str(byol_run), str(tmp_path / "b.safetensors"))
  monkeypatch.setitem(sys.modules, "safetensors", None)  # import safetensors -> ImportError
  monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
  assert "pip install 'jax_ssl[export]'" in _error_line([*run, *out])
  with pytest.raises(UserInputError, match=r"pip install 'jax_ssl\[export\]'"):
    backbone.load_backbone(tmp_path / "b.safetensors")
  assert backbone.load_backbone(tmp_path / "b.msgpack").feature_dim == 32  # msgpack: core only
  (tmp_path / "b.msgpack.json").unlink()
  with pytest.raises(UserInputError, match=r"b\.msgpack\.json not found: load_backbone reads"):
    backbone.load_backbone(tmp_path / "b.msgpack")


# ---------------------------------------------------------------- torchvision's layout


def _random_weights(architecture, seed=0) -> dict[str, np.ndarray]:
  """Random arrays of the backbone's shapes (BatchNorm variances positive)."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  module = nnx.eval_shape(lambda: backbone.build(architecture, rngs=nnx.Rngs(0)))
  shapes = {".".join(map(str, path)): v.get_value().shape
            for path, v in nnx.to_flat_state(nnx.state(module))}
  return {k: (np.abs(rng.standard_normal(s)) + 0.5 if k.endswith(".var")
              else rng.standard_normal(s) * 0.05).astype(np.float32) for k, s in shapes.items()}


RESNET50 = {"backbone": "resnet50", "in_channels": 3, "width": 64, "stem": "imagenet",
            "final_features": 0, "dtype": "float32"}


def test_torchvision_layout_names_shapes_and_round_trip(tmp_path):
  weights = _random_weights(RESNET50)
  state_dict = backbone.to_torchvision(weights, RESNET50, num_batches_tracked=7)
  # torchvision's resnet50().state_dict() has 320 entries: 53 convolutions, 53 BatchNorms
  # of 5 (weight, bias, running_mean, running_var, num_batches_tracked) and fc's 2.
  assert len(state_dict) == 320 - 2 and not [k for k in state_dict if k.startswith("fc.")]
  expected = {"conv1.weight": (64, 3, 7, 7), "bn1.running_var": (64,),
              "layer1.0.conv1.weight": (64, 64, 1, 1), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
              "layer1.0.downsample.1.running_mean": (256,),
              "layer2.0.conv2.weight": (128, 128, 3, 3),  # v1.5: the stride on the 3x3
              "layer3.5.bn3.weight": (1024,), "layer4.2.conv3.weight": (2048, 512, 1, 1),
              "layer4.0.downsample.0.weight": (2048, 1024, 1, 1)}
  for name, shape in expected.items():
    assert state_dict[name].shape == shape, name
  assert state_dict["layer3.5.bn3.num_batches_tracked"].dtype == np.int64
  assert int(state_dict["layer3.5.bn3.num_batches_tracked"]) == 7
  # HWIO -> OIHW: torchvision's [out, in, kh, kw][o, i, h, w] is our [h, w, i, o].
  np.testing.assert_array_equal(state_dict["conv1.weight"][5, 2, 1, 3],
                                weights["stem_conv.kernel"][1, 3, 2, 5])
  np.testing.assert_array_equal(state_dict["layer2.1.bn2.running_var"],
                                weights["blocks.4.bn2.var"])  # layer2.1 is block 3 + 1
  back = backbone.from_torchvision({**state_dict, "fc.weight": np.zeros((1000, 2048))}, RESNET50)
  assert set(back) == set(weights)
  for key in weights:
    np.testing.assert_array_equal(back[key], weights[key], err_msg=key)
  # A CIFAR-stem one-channel ResNet-18 through the file: load_backbone maps it back.
  resnet18 = {**RESNET50, "backbone": "resnet18", "in_channels": 1, "stem": "cifar"}
  weights = _random_weights(resnet18, seed=1)
  info = {"architecture": resnet18, "step": 3}
  backbone.write(tmp_path / "r18.safetensors", weights, info, "torchvision")
  sidecar = json.loads((tmp_path / "r18.safetensors.json").read_text())
  assert sidecar["torchvision"]["changes"] == [
      "model.conv1 = torch.nn.Conv2d(1, 64, 3, 1, 1, bias=False)",
      "model.maxpool = torch.nn.Identity()", "model.fc = torch.nn.Identity()"]
  on_disk = backbone.safetensors_numpy().load((tmp_path / "r18.safetensors").read_bytes())
  assert on_disk["conv1.weight"].shape == (64, 1, 3, 3) and len(on_disk) == 122 - 2
  assert on_disk["bn1.num_batches_tracked"].shape == ()  # a 0-d int64, as torch's
  module = backbone.load_backbone(tmp_path / "r18.safetensors")
  assert module.stem_bn.use_running_average  # eval mode
  for key, value in backbone.flat_weights(module).items():
    np.testing.assert_array_equal(value, weights[key], err_msg=key)
  assert backbone.torchvision_changes({**resnet18, "stem": "stride2"})[0] == (
      "model.conv1 = torch.nn.Conv2d(1, 64, 3, 2, 1, bias=False)")
  for refused, reason in ((dict(backbone="resnet_small", width=16), "no torchvision counterpart"),
                          (dict(width=32), "model.width=32"),
                          (dict(final_features=512), "model.final_features=512")):
    assert reason in backbone.torchvision_refusal({**RESNET50, **refused})


def _torchvision():
  """torch and torchvision, or a skip (CI has no torch; a torchvision built for another
  torch fails at import with a RuntimeError, not an ImportError)."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
    import torchvision  # pylint: disable=g-import-not-at-top
  except Exception as e:  # pylint: disable=broad-except
    pytest.skip(f"torch/torchvision not importable: {type(e).__name__}: {str(e)[:100]}")
  return torch, torchvision


def test_torchvision_resnet50_loads_the_export_and_computes_the_same_features(tmp_path):
  torch, torchvision = _torchvision()
  import safetensors.torch  # pylint: disable=g-import-not-at-top
  weights = _random_weights(RESNET50, seed=2)
  backbone.write(tmp_path / "r50.safetensors", weights, {"architecture": RESNET50, "step": 5},
                 "torchvision")
  theirs = torchvision.models.resnet50()
  reference = theirs.state_dict()
  ours = safetensors.torch.load_file(str(tmp_path / "r50.safetensors"))
  assert {k: tuple(v.shape) for k, v in ours.items()} == {
      k: tuple(v.shape) for k, v in reference.items() if not k.startswith("fc.")}
  assert all(ours[k].dtype == reference[k].dtype for k in ours)
  result = theirs.load_state_dict(ours, strict=False)
  assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and not result.unexpected_keys
  theirs.fc = torch.nn.Identity()
  theirs.eval()
  images = np.random.default_rng(4).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
  with torch.no_grad():
    torch_features = theirs(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
  module = backbone.load_backbone(tmp_path / "r50.safetensors")
  jax_features = np.asarray(module(images))
  assert jax_features.shape == torch_features.shape == (2, 2048)
  assert np.std(torch_features) > 1e-2  # not a dead network: the comparison means something
  # Same architecture: agreement to float32 rounding (6e-8 of features up to 0.33 measured).
  np.testing.assert_allclose(jax_features, torch_features, rtol=1e-5, atol=1e-6)


def test_evaluation_restores_the_ema_target_of_the_checkpoint(byol_run):
  """`python -m jax_ssl.evaluate` with `eval.encoder=target` (DINO's default) evaluates the
  checkpoint's EMA target: restore_for_evaluation must restore target_params and
  target_batch_stats, not leave the initial target in place (it did: found by the export)."""
  from jax_ssl.evaluate import workdir as eval_workdir  # pylint: disable=g-import-not-at-top
  workdir, _, _, states = byol_run
  initial = jax.tree.map(jnp.zeros_like, states[2])
  restored = eval_workdir.restore_for_evaluation(
      str(workdir / "checkpoints"), 2, initial, sharding.replicated(sharding.make_mesh()))
  for field in ("params", "batch_stats", "target_params", "target_batch_stats"):
    saved_leaves = jax.tree.leaves(getattr(states[2], field))
    restored_leaves = jax.tree.leaves(getattr(restored, field))
    assert saved_leaves and len(saved_leaves) == len(restored_leaves), field
    for saved, got in zip(saved_leaves, restored_leaves):
      np.testing.assert_array_equal(np.asarray(got), np.asarray(saved), err_msg=field)
  # The features of the target encoder are the checkpoint's target's, unlike the online ones.
  target = np.asarray(jax.tree.leaves(encoder_weights(restored, "target")[0])[0])
  online = np.asarray(jax.tree.leaves(encoder_weights(restored, "online")[0])[0])
  assert not np.array_equal(target, online)


def test_vit_options_travel_in_the_sidecar_architecture():
  # A ViT with registers, SwiGLU, LayerScale, RoPE and QK-norm: the sidecar's architecture
  # rebuilds the same module the config builds (every parameter path and shape); a sidecar
  # written before the options existed (no such keys) rebuilds the plain ViT.
  from flax import nnx  # pylint: disable=g-import-not-at-top
  model = dict(backbone="vit_tiny", dim=16, depth=1, num_heads=2, patch_size=7,
               num_registers=2, mlp="swiglu", layer_scale=1e-5, rope=True, qk_norm=True,
               pos_embedding="none")
  config = typed({"method": "mae", "model": model})
  architecture = export.architecture_of(config, in_channels=1)
  shapes = lambda m: {".".join(map(str, path)): variable.get_value().shape
                      for path, variable in nnx.to_flat_state(nnx.state(m))}
  from_config = nnx.eval_shape(lambda: config_lib.build_backbone(config, 1, nnx.Rngs(0)))
  rebuilt = backbone.build_abstract(architecture)
  assert shapes(rebuilt) == shapes(from_config)
  assert rebuilt.num_prefix_tokens == 3 and shapes(rebuilt)["register_tokens"] == (1, 2, 16)
  # SwiGLU's fused gate/value projection: 2 x int(2/3 * 4 * 16) rounded up to 8 = 2 x 48
  assert shapes(rebuilt)["blocks.0.mlp.w12.kernel"] == (16, 96)
  assert shapes(rebuilt)["blocks.0.ls1.gamma"] == (16,)
  old = {k: v for k, v in architecture.items() if k not in backbone.VIT_OPTIONS}
  old["pos_embedding"] = "sincos"
  plain = backbone.build_abstract(old)
  assert plain.num_prefix_tokens == 1 and len(shapes(plain)) < len(shapes(rebuilt))

"""`python -m jax_ssl.export`: the pretrained backbone of a run, as files a user takes away.

  python -m jax_ssl.export --workdir DIR --out PATH [--format safetensors|msgpack|torchvision]
                           [--teacher] [--step N]

Writes the backbone's parameters and BatchNorm statistics of checkpoint N of DIR (default:
the latest) at PATH, and a JSON sidecar at PATH + ".json" naming the architecture, method,
encoder, step, workdir, config and jax_ssl version (the format: jax_ssl/backbone.py). Only
the encoder: no projector, predictor or other heads. `--teacher` exports the EMA target's
encoder instead of the online one (methods with an EMA target of the backbone: BYOL, DINO,
MoCo v2/v3). `--format` defaults to msgpack for a PATH ending in .msgpack, else safetensors
(`pip install 'jax_ssl[export]'`); `torchvision` (ResNet-18/50) writes torchvision's key
names and layouts. DIR and PATH may be local or `gs://` (every read and write goes through
`etils.epath` and Orbax). In user code, without the trainer or the experiment file:

  backbone = jax_ssl.load_backbone(PATH)   # a Flax NNX module in eval mode

The run is loaded as `python -m jax_ssl.evaluate` loads it (jax_ssl/evaluate/workdir.py:
`load_config`, `restore_for_evaluation`; `config.build_backbone`; `state.encoder_weights`),
restoring only the backbone's arrays (an Orbax partial restore), so neither the dataset nor
the optimizer is needed. The image channels come from the checkpoint's own shapes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from etils import epath

from jax_ssl import backbone
from jax_ssl.config.paths import absolute_path
from jax_ssl.errors import ConfigError, DataError, UserInputError


def _checkpoint_step(directory: epath.Path, step: int | None) -> int:
  """`step` (checked) or the newest finalized checkpoint of `directory`."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  saved = sorted(ocp.path.step.checkpoint_steps(directory))
  if not saved:
    raise DataError(f"no checkpoint in {directory}; train first (python -m jax_ssl.train "
                    f"... --workdir {directory.parent})")
  if step is None:
    return saved[-1]
  if step not in saved:
    raise DataError(f"--step {step}: no checkpoint of that step in {directory} (it has "
                    f"{saved}); pass one of them, or leave --step out for the latest")
  return step


def _leaf(tree, path) -> Any:
  """The leaf at an nnx path in Orbax's metadata tree (variables are saved as {"value": x})."""
  node = tree
  for part in path:
    node = node[str(part)] if str(part) in node else node[part]
  return node.get("value", node) if isinstance(node, dict) else node


def in_channels_of(config, saved_backbone) -> int:
  """The image channels the run's backbone was built for, read from the checkpoint: the
  shape of the one leaf that depends on them (the stem or patch embedding), matched against
  the backbone built for 1..16 channels. The dataset need not be present."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from jax_ssl import config as config_lib  # pylint: disable=g-import-not-at-top

  def shapes(channels: int) -> dict:
    module = nnx.eval_shape(lambda: config_lib.build_backbone(config, channels, nnx.Rngs(0)))
    return {path: variable.get_value().shape
            for path, variable in nnx.to_flat_state(nnx.state(module))}

  one, two = shapes(1), shapes(2)
  dependent = [path for path in one if one[path] != two[path]]
  try:
    saved = {path: tuple(_leaf(saved_backbone, path).shape) for path in dependent}
  except (KeyError, TypeError, AttributeError):
    saved = None
  for channels in range(1, 17):
    candidate = shapes(channels) if channels > 2 else (one, two)[channels - 1]
    if saved and all(candidate[path] == shape for path, shape in saved.items()):
      return channels
  raise DataError(f"the checkpoint's backbone does not match config.json's model "
                  f"({config.model.backbone}): the checkpoint was written by another "
                  f"version of jax_ssl or another config")


def architecture_of(config, in_channels: int) -> dict[str, Any]:
  """The `model.*` values (and the image channels and size) that rebuild the backbone
  (`backbone.build`), as `config.build_backbone` reads them."""
  from jax_ssl.models import resnet, vit, vq  # pylint: disable=g-import-not-at-top
  model = config.model
  architecture: dict[str, Any] = {"backbone": model.backbone, "in_channels": in_channels}
  if model.backbone in vit.BACKBONES:
    architecture.update(image_size=config.augment.output_size, patch_size=model.patch_size,
                        depth=model.depth, dim=model.dim, num_heads=model.num_heads,
                        pos_embedding=model.pos_embedding, cls_token=model.cls_token,
                        pool=model.pool, dtype=model.dtype, remat=model.remat,
                        causal=model.causal, rope=model.rope, qk_norm=model.qk_norm,
                        mlp=model.mlp, layer_scale=model.layer_scale,
                        num_registers=model.num_registers)
  elif model.backbone in vq.BACKBONES:
    architecture.update(width=model.width, patch_size=model.patch_size)
  else:
    architecture.update(width=model.width or resnet.BACKBONES[model.backbone][2],
                        stem=model.stem, final_features=model.final_features,
                        dtype=model.dtype)
  return architecture


def export_backbone(workdir: str, out: str, *, weights_format: str = "safetensors",
                    teacher: bool = False, step: int | None = None) -> dict[str, Any]:
  """Writes the backbone of checkpoint `step` (None: the latest) of `workdir` at `out` and
  its sidecar at `out` + ".json"; returns the sidecar's fields."""
  if weights_format not in backbone.FORMATS:
    raise ConfigError(f"--format={weights_format}; use one of {', '.join(backbone.FORMATS)}")
  if weights_format != "msgpack":
    backbone.safetensors_numpy()  # the missing extra fails before anything loads
  # The trainer's modules (Orbax; TFDS and grain through evaluate.workdir: [train]) from here.
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top

  import jax_ssl  # pylint: disable=g-import-not-at-top
  from jax_ssl import config as config_lib  # pylint: disable=g-import-not-at-top
  from jax_ssl import methods, sharding  # pylint: disable=g-import-not-at-top
  from jax_ssl.evaluate.workdir import load_config, restore_for_evaluation  # pylint: disable=g-import-not-at-top
  from jax_ssl.methods.spec import SSLModel  # pylint: disable=g-import-not-at-top
  from jax_ssl.state import TrainState, encoder_weights, split_model  # pylint: disable=g-import-not-at-top

  config = load_config(workdir)
  spec = methods.get_method(config.method)
  if teacher and "backbone" not in spec.target_modules:
    with_target = sorted(name for name, m in methods.METHODS.items()
                         if "backbone" in m.target_modules)
    raise ConfigError(f"--teacher: {config.method} has no EMA target of its backbone (methods "
                      f"with one: {', '.join(with_target)}); leave out --teacher to export "
                      f"its online encoder")
  if weights_format == "torchvision":  # the channels do not matter to the refusal
    refusal = backbone.torchvision_refusal(architecture_of(config, in_channels=3))
    if refusal:
      raise ConfigError(refusal)
  directory = epath.Path(workdir) / "checkpoints"
  step = _checkpoint_step(directory, step)
  state_dir = directory / str(step) / "state"
  saved = ocp.PyTreeCheckpointer().metadata(state_dir).item_metadata.tree
  in_channels = in_channels_of(config, saved["params"]["backbone"])

  # The evaluation's model, restored as the evaluation restores it, backbone only.
  model = nnx.eval_shape(lambda: SSLModel(
      config_lib.build_backbone(config, in_channels, nnx.Rngs(config.seed)), {}))
  graphdef, params, batch_stats = split_model(model)
  if teacher and "backbone" not in saved.get("target_params", {}):
    raise DataError(f"{state_dir} holds no EMA target of the backbone (written before the "
                    f"target was saved?); export the online encoder (leave out --teacher)")
  # With --teacher the target's backbone too (restore_for_evaluation restores the target
  # fields `state` has; a checkpoint without the target's own statistics gets the online ones).
  target = {"backbone": params["backbone"]} if teacher else {}
  target_stats = ({"backbone": batch_stats["backbone"]}
                  if teacher and jax.tree.leaves(batch_stats) else {})
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                     opt_state=(), method_state=(), target_params=nnx.State(target),
                     target_batch_stats=nnx.State(target_stats))
  replicated = sharding.replicated(sharding.make_mesh())
  state = restore_for_evaluation(str(directory), step, state, replicated)
  encoder = "target" if teacher else "online"
  trained = nnx.merge(graphdef, *jax.device_get(encoder_weights(state, encoder))).backbone

  architecture = architecture_of(config, in_channels)
  # What load_backbone builds from the sidecar must be this module, attribute for attribute
  # (both on the run's speed backend here: the weights do not depend on it).
  from jax_ssl import backends  # pylint: disable=g-import-not-at-top
  with backends.use(backends.select(config.backend)):
    sidecar_module = backbone.build_abstract(architecture)
  if nnx.graphdef(sidecar_module) != nnx.graphdef(trained):
    raise RuntimeError(f"backbone.build({architecture}) differs from config.build_backbone's "
                       f"module: a model.* key is missing from export.architecture_of")
  weights = backbone.flat_weights(trained)
  info = {
      "architecture": architecture,
      "feature_dim": int(trained.feature_dim),
      "num_parameters": int(sum(v.size for v in jax.tree.leaves(nnx.state(trained, nnx.Param)))),
      "input": {"layout": "NHWC", "image_size": config.augment.output_size,
                "channels": in_channels, "dtype": "float32", "range": [0.0, 1.0],
                "normalization": None, "eval_crop_fraction": config.eval.crop_fraction},
      "method": config.method, "encoder": encoder, "step": int(jax.device_get(state.step)),
      "workdir": str(workdir), "dataset": config.dataset.name,
      "jax_ssl_version": jax_ssl.__version__, "config": json.loads(json.dumps(config.to_dict()))}
  path, sidecar = backbone.write(out, weights, info, weights_format)
  info["written"] = [str(path), str(sidecar)]
  return info


class _Parser(argparse.ArgumentParser):
  def error(self, message):  # one line, as every jax_ssl command line
    sys.exit(f"error: {message} (python -m jax_ssl.export --help)")


def main(argv: list[str] | None = None) -> None:
  parser = _Parser(prog="python -m jax_ssl.export",
                   description="Export a run's pretrained backbone (jax_ssl/export.py).")
  parser.add_argument("--workdir", required=True, help="A training run's output directory.")
  parser.add_argument("--out", required=True, help="The weights file to write; the sidecar "
                      "goes to OUT.json.")
  parser.add_argument("--format", choices=backbone.FORMATS, default=None,
                      help="Default: msgpack for an OUT ending in .msgpack, else safetensors.")
  parser.add_argument("--teacher", action="store_true",
                      help="Export the EMA target's encoder (BYOL, DINO, MoCo).")
  parser.add_argument("--step", type=int, default=None,
                      help="Checkpoint step to export (default: the latest).")
  args = parser.parse_args(argv)
  # As every entry point, before anything starts JAX (jax_ssl/backends). The export computes
  # nothing with the backbone, so the run's backend does not matter: "auto".
  from jax_ssl import backends  # pylint: disable=g-import-not-at-top
  backends.prepare_process("auto")
  weights_format = args.format or ("msgpack" if args.out.endswith(".msgpack") else "safetensors")
  logging.getLogger("absl").setLevel(logging.ERROR)  # Orbax logs every file it reads
  try:
    info = export_backbone(absolute_path(args.workdir), absolute_path(args.out, "--out"),
                           weights_format=weights_format, teacher=args.teacher, step=args.step)
  except UserInputError as e:
    sys.exit(f"error: {e}")
  architecture = info["architecture"]
  print(f"exported the {info['encoder']} encoder of {info['method']} (step {info['step']}; "
        f"{architecture['backbone']}, {info['num_parameters']:,} parameters, "
        f"{info['feature_dim']}-d features) to {info['written'][0]} ({weights_format}) and "
        f"{info['written'][1]}", flush=True)
  if weights_format == "torchvision":
    changes = backbone.torchvision_changes(architecture)
    print(f"in PyTorch: model = torchvision.models.{architecture['backbone']}(); "
          f"{'; '.join(changes)}; model.load_state_dict(safetensors.torch.load_file(PATH), "
          f"strict=False); inputs NCHW in [0, 1], no mean/std normalisation", flush=True)
  from jax_ssl import methods  # pylint: disable=g-import-not-at-top
  if not args.teacher and methods.get_method(info["method"]).evaluation_encoder == "target":
    print(f"note: {info['method']} is evaluated with its EMA teacher; --teacher exports it",
          flush=True)


if __name__ == "__main__":
  main()

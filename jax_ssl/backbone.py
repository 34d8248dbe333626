"""Backbones users take away: the file format `python -m jax_ssl.export` writes, and
`load_backbone`, which reads it back into a ready Flax NNX module.

  backbone = jax_ssl.load_backbone("resnet.safetensors")   # in eval mode, weights loaded
  features = backbone(images)  # [B, H, W, C] float32 in [0, 1] -> float32 [B, feature_dim]

Two files per export: the weights at PATH and a JSON sidecar at PATH + ".json"
(`sidecar_path`) that names the architecture (the `model.*` values that rebuild the module,
with the image channels and size), the method, the encoder (the online network, or the EMA
target with `--teacher`), the step, the run's workdir and full config, the jax_ssl version
and the input the backbone expects: NHWC float32 in [0, 1] (uint8 / 255) at the training
views' size, no mean/std normalisation (the evaluation's centre view, `augment.center_view`).

The weights are the backbone's parameters and BatchNorm running statistics only (no
projector, predictor or other heads), keyed by their path in the module with "." (e.g.
`blocks.0.conv1.kernel`, `stem_bn.mean`), float32, in one of three formats:
  * "safetensors" (default; `pip install 'jax_ssl[export]'`): read by any safetensors client;
  * "msgpack": `flax.serialization.msgpack_serialize` of the same flat dict (core deps only);
  * "torchvision" (ResNet-18/50): a safetensors file with torchvision's key names and
    layouts (`to_torchvision`), for `torchvision.models.resnet50().load_state_dict(...,
    strict=False)`; `load_backbone` maps it back.

Only the core dependencies are imported here (jax, flax, numpy, etils' epath, and
safetensors when a file is in that format): no trainer, Orbax, TFDS, grain or
ml_collections, so a user's process stays light. Every read goes through `etils.epath`, so
PATH may be a local path or a `gs://` URL (with the `[gcs]` extra's client).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import nnx

from jax_ssl.errors import ConfigError, DataError, UserInputError
from jax_ssl.models import resnet, vit, vq

FORMATS = ("safetensors", "msgpack", "torchvision")
SIDECAR_FORMAT = "jax_ssl.backbone/1"  # bumped when the sidecar or key layout changes
EXTRA = "pip install 'jax_ssl[export]'"


def sidecar_path(path: str | epath.Path) -> epath.Path:
  """The JSON sidecar of a weights file: PATH + ".json" (`resnet.safetensors.json`)."""
  return epath.Path(str(path) + ".json")


def safetensors_numpy():
  """`safetensors.numpy`, or one line naming the extra that installs it."""
  try:
    import safetensors.numpy  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserInputError(f"the safetensors format needs the safetensors package: {EXTRA} "
                         f"(or export with --format msgpack)") from None
  return safetensors.numpy


# ---------------------------------------------------------------- the module from its sidecar


# ViT options a sidecar names only if it was exported after they existed
VIT_OPTIONS = ("causal", "rope", "qk_norm", "mlp", "layer_scale", "num_registers")


def build(architecture: Mapping[str, Any], *, rngs: nnx.Rngs) -> nnx.Module:
  """The backbone an `architecture` (the sidecar's) names, as `config.build_backbone` builds
  it from `model.*` (`python -m jax_ssl.export` checks that both give the same module)."""
  a = dict(architecture)
  name = a.get("backbone")
  try:
    if name in vit.BACKBONES:
      return vit.make_vit(name, image_size=a["image_size"], patch_size=a["patch_size"],
                          in_channels=a["in_channels"], depth=a["depth"], dim=a["dim"],
                          num_heads=a["num_heads"], pos_embedding=a["pos_embedding"],
                          cls_token=a["cls_token"], pool=a["pool"], dtype=a["dtype"],
                          remat=a["remat"], rngs=rngs,
                          # options newer than the first sidecars: absent = the plain ViT
                          **{key: a[key] for key in VIT_OPTIONS if key in a})
    if name in vq.BACKBONES:
      return vq.make_encoder(name, width=a["width"], patch_size=a["patch_size"],
                             in_channels=a["in_channels"], rngs=rngs)
    if name in resnet.BACKBONES:
      return resnet.make_backbone(name, width=a["width"], stem=a["stem"],
                                  in_channels=a["in_channels"],
                                  final_features=a["final_features"], dtype=a["dtype"],
                                  rngs=rngs)
  except KeyError as e:
    raise DataError(f"the sidecar's architecture lacks {e.args[0]!r}: it was not written by "
                    f"python -m jax_ssl.export of this jax_ssl version; export it again") from None
  raise DataError(f"backbone {name!r} is unknown to this jax_ssl version (it knows "
                  f"{sorted([*resnet.BACKBONES, *vit.BACKBONES, *vq.BACKBONES])}); load it "
                  f"with the version that exported it")


def build_abstract(architecture: Mapping[str, Any]) -> nnx.Module:
  """The module without computing an initialisation (shapes and dtypes only)."""
  return nnx.eval_shape(lambda: build(architecture, rngs=nnx.Rngs(0)))


def _key(path) -> str:
  return ".".join(str(part) for part in path)


def flat_weights(module: nnx.Module) -> dict[str, np.ndarray]:
  """{dotted path: float32 numpy array} of the module's parameters and BatchNorm statistics."""
  _, state = nnx.split(module)
  return {_key(path): np.asarray(variable.get_value())
          for path, variable in nnx.to_flat_state(state)}


def _from_flat(architecture: Mapping[str, Any], weights: Mapping[str, np.ndarray],
               where: str) -> nnx.Module:
  """The module of `architecture` holding `weights` (every key and shape checked)."""
  graphdef, state = nnx.split(build_abstract(architecture))
  flat = list(nnx.to_flat_state(state))
  expected = {_key(path): variable.get_value() for path, variable in flat}
  missing = sorted(set(expected) - set(weights))
  unexpected = sorted(set(weights) - set(expected))
  wrong = sorted(k for k in set(expected) & set(weights)
                 if tuple(np.shape(weights[k])) != tuple(expected[k].shape))
  if missing or unexpected or wrong:
    described = ([f"missing {k}" for k in missing] + [f"unexpected {k}" for k in unexpected]
                 + [f"{k} has shape {np.shape(weights[k])}, expected {expected[k].shape}"
                    for k in wrong])
    raise DataError(f"{where} does not hold the weights of its sidecar's {architecture.get('backbone')} "
                    f"({'; '.join(described[:3])}{f'; {len(described) - 3} more' if len(described) > 3 else ''}): "
                    f"export it again")
  state = nnx.from_flat_state([
      (path, variable.replace(jnp.asarray(weights[_key(path)], variable.get_value().dtype)))
      for path, variable in flat])
  return nnx.merge(graphdef, state)


# ---------------------------------------------------------------- torchvision's ResNet layout

# BatchNorm: ours (nnx.BatchNorm) -> torch.nn.BatchNorm2d.
_BN_NAMES = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
TORCHVISION_RESNETS = {"resnet18": "resnet18", "resnet50": "resnet50"}


def torchvision_refusal(architecture: Mapping[str, Any]) -> str | None:
  """Why `architecture` has no torchvision state dict (one line), or None if it has one.

  torchvision's ResNet fixes the stem and first stage at 64 channels and has no final 1x1
  conv, so only ResNet-18/50 of the default width and `final_features=0` map onto it; the
  CIFAR stem and other channel counts map with the changes `torchvision_changes` lists."""
  name = architecture.get("backbone")
  if name not in TORCHVISION_RESNETS:
    return (f"--format torchvision: model.backbone={name!r} has no torchvision counterpart "
            f"(it maps {sorted(TORCHVISION_RESNETS)}); use --format safetensors or msgpack")
  if architecture["width"] != 64:
    return (f"--format torchvision: model.width={architecture['width']}, but torchvision's "
            f"{name} is 64 wide; use --format safetensors or msgpack")
  if architecture["final_features"]:
    return (f"--format torchvision: model.final_features={architecture['final_features']} "
            f"(a final 1x1 conv torchvision's {name} lacks); use --format safetensors or msgpack")
  return None


def torchvision_changes(architecture: Mapping[str, Any]) -> list[str]:
  """The edits of `torchvision.models.<name>()` that make it this backbone (empty for the
  ImageNet stem on RGB)."""
  changes = []
  channels = architecture["in_channels"]
  if architecture["stem"] in ("cifar", "stride2"):
    stride = resnet.STEM_STRIDES[architecture["stem"]]
    changes += [f"model.conv1 = torch.nn.Conv2d({channels}, 64, 3, {stride}, 1, bias=False)",
                "model.maxpool = torch.nn.Identity()"]
  elif channels != 3:
    changes.append(f"model.conv1 = torch.nn.Conv2d({channels}, 64, 7, 2, 3, bias=False)")
  return changes + ["model.fc = torch.nn.Identity()"]


def _stage_and_index(architecture: Mapping[str, Any]) -> list[tuple[int, int]]:
  """(stage, index in stage) of each entry of `ResNet.blocks`."""
  stage_sizes = resnet.BACKBONES[architecture["backbone"]][0]
  return [(stage, index) for stage, size in enumerate(stage_sizes) for index in range(size)]


def _torchvision_name(key: str, blocks: list[tuple[int, int]]) -> str:
  """Our dotted key -> torchvision's: stem_conv/stem_bn -> conv1/bn1, blocks.k -> layerS.I
  (S = stage + 1), shortcut.layers.{0,1} -> downsample.{0,1}; kernel -> weight, BatchNorm
  scale/bias/mean/var -> weight/bias/running_mean/running_var."""
  *modules, leaf = key.split(".")
  if modules == ["stem_conv"]:
    modules = ["conv1"]
  elif modules == ["stem_bn"]:
    modules = ["bn1"]
  elif modules[0] == "blocks":
    stage, index = blocks[int(modules[1])]
    inner = modules[2:]
    if inner[:2] == ["shortcut", "layers"]:
      inner = ["downsample", *inner[2:]]
    modules = [f"layer{stage + 1}", str(index), *inner]
  else:
    raise ValueError(f"{key} has no torchvision counterpart")
  return ".".join(modules + [("weight" if leaf == "kernel" else _BN_NAMES[leaf])])


def to_torchvision(weights: Mapping[str, np.ndarray], architecture: Mapping[str, Any], *,
                   num_batches_tracked: int = 0) -> dict[str, np.ndarray]:
  """Flat weights of a ResNet-18/50 -> torchvision's `resnet18/50().state_dict()` without
  `fc` (conv kernels HWIO -> OIHW; each BatchNorm also gets torchvision's int64
  `num_batches_tracked`, which `BatchNorm2d` with its default momentum never reads)."""
  blocks = _stage_and_index(architecture)
  out = {}
  for key, value in weights.items():
    name = _torchvision_name(key, blocks)
    value = np.asarray(value)
    out[name] = np.asarray(value.transpose(3, 2, 0, 1) if value.ndim == 4 else value, order="C")
    if name.endswith(".running_var"):
      out[name.replace(".running_var", ".num_batches_tracked")] = np.asarray(
          num_batches_tracked, np.int64)
  return out


def from_torchvision(tensors: Mapping[str, np.ndarray], architecture: Mapping[str, Any]
                     ) -> dict[str, np.ndarray]:
  """The inverse of `to_torchvision` (torchvision's extra keys, `fc.*` and
  `num_batches_tracked`, ignored; a missing key is left for the caller's check)."""
  blocks = _stage_and_index(architecture)
  _, state = nnx.split(build_abstract(architecture))
  out = {}
  for path, _ in nnx.to_flat_state(state):
    key = _key(path)
    name = _torchvision_name(key, blocks)
    if name in tensors:
      value = np.asarray(tensors[name])
      out[key] = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value
  return out


# ---------------------------------------------------------------- writing and reading


def write(path: str | epath.Path, weights: Mapping[str, np.ndarray], info: Mapping[str, Any],
          weights_format: str) -> tuple[epath.Path, epath.Path]:
  """Writes the weights (flat, ours) at `path` in `weights_format` and `info` (the sidecar's
  fields) at `sidecar_path(path)`; returns both paths. Used by `python -m jax_ssl.export`."""
  if weights_format not in FORMATS:
    raise ConfigError(f"--format={weights_format}; use one of {', '.join(FORMATS)}")
  path = epath.Path(path)
  architecture = info["architecture"]
  if weights_format == "msgpack":
    from flax import serialization  # pylint: disable=g-import-not-at-top
    data = serialization.msgpack_serialize({k: np.asarray(v) for k, v in weights.items()})
  else:
    if weights_format == "torchvision":
      refusal = torchvision_refusal(architecture)
      if refusal:
        raise ConfigError(refusal)
      weights = to_torchvision(weights, architecture, num_batches_tracked=info.get("step", 0))
    data = safetensors_numpy().save({k: np.asarray(v, order="C") for k, v in weights.items()},
                                    metadata={"format": SIDECAR_FORMAT,
                                              "sidecar": sidecar_path(path).name})
  sidecar = {"format": SIDECAR_FORMAT,
             "weights": {"file": path.name, "format": weights_format}, **info}
  if weights_format == "torchvision":
    sidecar["torchvision"] = {
        "constructor": f"torchvision.models.{TORCHVISION_RESNETS[architecture['backbone']]}()",
        "changes": torchvision_changes(architecture),
        "input": "NCHW float32 in [0, 1], no mean/std normalisation",
        "load": "model.load_state_dict(safetensors.torch.load_file(PATH), strict=False)"}
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(data)
  sidecar_path(path).write_text(json.dumps(sidecar, indent=2, sort_keys=False) + "\n")
  return path, sidecar_path(path)


def read_info(path: str | epath.Path) -> dict[str, Any]:
  """The sidecar of the weights at `path` (architecture, method, step, encoder, input, ...)."""
  sidecar = sidecar_path(path)
  if not sidecar.exists():
    raise DataError(f"{sidecar} not found: load_backbone reads the weights' sidecar, written "
                    f"next to them by python -m jax_ssl.export; keep the two files together")
  info = json.loads(sidecar.read_text())
  if info.get("format") != SIDECAR_FORMAT:
    raise DataError(f"{sidecar} has format {info.get('format')!r}, not {SIDECAR_FORMAT!r}: "
                    f"export it again with this jax_ssl version")
  return info


def load_weights(path: str | epath.Path, info: Mapping[str, Any] | None = None
                 ) -> dict[str, np.ndarray]:
  """The flat weights (our keys and layouts) of an exported file."""
  path = epath.Path(path)
  info = read_info(path) if info is None else info
  if not path.exists():
    raise DataError(f"{path} not found (its sidecar {sidecar_path(path)} is there): pass the "
                    f"weights file that python -m jax_ssl.export wrote")
  weights_format = info["weights"]["format"]
  if weights_format == "msgpack":
    from flax import serialization  # pylint: disable=g-import-not-at-top
    return dict(serialization.msgpack_restore(path.read_bytes()))
  if weights_format not in FORMATS:
    raise DataError(f"{sidecar_path(path)}: weights format {weights_format!r} is unknown to "
                    f"this jax_ssl version (it reads {', '.join(FORMATS)})")
  tensors = safetensors_numpy().load(path.read_bytes())
  if weights_format == "torchvision":
    return from_torchvision(tensors, info["architecture"])
  return tensors


def load_backbone(path: str | epath.Path, *, dtype: str | None = None) -> nnx.Module:
  """The exported backbone at `path` as a Flax NNX module, ready for inference.

  Args:
    path: the weights file `python -m jax_ssl.export --out PATH` wrote (its sidecar
      PATH + ".json" beside it); local or a `gs://` URL.
    dtype: the compute dtype ("float32" or "bfloat16"); None: the run's `model.dtype`.
      The parameters are float32 either way.

  Returns:
    The backbone (a ResNet, ViT or VQ encoder of `jax_ssl.models`) with the exported
    parameters and BatchNorm statistics, in eval mode (`use_running_average=True`):
    `module(images)` maps NHWC float32 images in [0, 1] of the sidecar's `input` size to
    float32 [B, feature_dim] features, the ones the run's evaluation used. Train it further
    with `module.train()` and any optax optimizer.
  """
  info = read_info(path)
  architecture = dict(info["architecture"])
  if dtype is not None:
    architecture["dtype"] = dtype
  module = _from_flat(architecture, load_weights(path, info), str(path))
  module.eval()
  return module

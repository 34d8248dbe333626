"""Frozen teachers read from other runs, for the build step: a method never reads files.

A method that learns from a frozen network trained elsewhere (BEiT's tokenizer) declares
`MethodSpec.load_teacher`; the build step calls it once, before the model and the method
state are made, and hands the `spec.Teacher` it returns to the method as arguments
(`make_heads(..., teacher=)`, `init_method_state(..., teacher=)`, `StepContext.teacher`).
Everything that touches another run's files (its config.json, its Orbax checkpoint) lives
here: the method's own code stays pure, and a run keeps training after the build step even
if the teacher's workdir is gone (its parameters are in the run's own method state and
checkpoints from then on).

`load_vq_tokenizer(workdir)`: the encoder and quantizer of the latest complete checkpoint of
a `vq_tokenizer` run (`jax_ssl/methods/vq_tokenizer.py`), as `models/vq.VQTokenizer`.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx

from jax_ssl import checkpoint, fs
from jax_ssl.config.typed import from_mapping
from jax_ssl.errors import DataError
from jax_ssl.methods import vq_tokenizer
from jax_ssl.methods.spec import Teacher
from jax_ssl.models import vq

TRAIN_COMMAND = ("python -m jax_ssl.train --config experiments/fashion_mnist/vq_tokenizer.py "
                 "--workdir DIR")


def _saved_run(workdir: str) -> tuple[dict[str, Any], str]:
  """(the run's config.json as a dict, the absolute path of its latest complete
  checkpoint's TrainState).

  `workdir` is taken relative to the current directory (Orbax reads absolute paths only); a
  URL (gs://...) is read through etils.epath as it is (jax_ssl/fs.py).
  """
  if not workdir:
    raise DataError(f"method_args.tokenizer_workdir is not set; train a tokenizer with "
                    f"{TRAIN_COMMAND} and pass --config.method_args.tokenizer_workdir=DIR")
  workdir = fs.absolute(workdir)
  config_path = fs.path(workdir) / "config.json"
  step = checkpoint.last_complete_step(fs.join(workdir, "checkpoints"))
  if not config_path.exists() or step is None:
    what = ("does not exist" if not fs.path(workdir).is_dir() else
            "has no config.json" if not config_path.exists() else "has no checkpoint")
    raise DataError(f"method_args.tokenizer_workdir={workdir} {what}: train the tokenizer "
                    f"first with {TRAIN_COMMAND.replace('DIR', workdir)}")
  config = json.loads(config_path.read_text())
  if config["method"] != vq_tokenizer.SPEC.name:
    raise DataError(f"method_args.tokenizer_workdir={workdir} holds a {config['method']!r} "
                    f"run, not a {vq_tokenizer.SPEC.name!r} one; train one with {TRAIN_COMMAND}")
  return config, fs.join(workdir, "checkpoints", str(step), "state")


def _build(config: Mapping[str, Any], heads: vq_tokenizer.Heads,
           in_channels: int) -> vq.VQTokenizer:
  """The tokenizer module of the saved run's model and heads (freshly initialised)."""
  rngs = nnx.Rngs(0)
  model = config["model"]
  encoder = vq.make_encoder(model["backbone"], width=model["width"],
                            patch_size=model["patch_size"], in_channels=in_channels, rngs=rngs)
  quantizer = vq_tokenizer.make_heads(encoder, heads, vq_tokenizer.Args(), rngs)["quantizer"]
  return vq.VQTokenizer(encoder, quantizer)


# Where the tokenizer's modules sit in the run's TrainState.params.
_SAVED_PATHS = {"encoder": ("backbone",), "quantizer": ("heads", "quantizer")}


def _saved_leaf(params: Mapping[str, Any], path: Sequence[Any]) -> Any:
  """The saved array (or its metadata) of the tokenizer parameter at `path` ("encoder", ...).

  Orbax stores nnx.List indices as strings and each Variable as {"value": array}.
  """
  node = params
  for key in _SAVED_PATHS[path[0]] + tuple(str(k) for k in path[1:]):
    node = node[key]
  return node["value"] if isinstance(node, Mapping) and set(node) == {"value"} else node


def _read_state(path: str, *, restore: bool) -> Any:
  """The saved TrainState tree at `path` (absolute): its metadata, or (`restore`) its arrays
  as numpy. Through the item handler: the Checkpointer would warn, once per call, that the
  item folder has no _CHECKPOINT_METADATA (that file lives in the step folder above it)."""
  handler = ocp.PyTreeCheckpointHandler()
  try:
    metadata = handler.metadata(epath.Path(path)).tree
    if not restore:
      return metadata
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), metadata)
    return handler.restore(epath.Path(path), args=ocp.args.PyTreeRestore(restore_args=as_numpy))
  finally:
    handler.close()


def load_vq_tokenizer(workdir: str) -> Teacher:
  """BEiT's frozen tokenizer from the `vq_tokenizer` run in `workdir`.

  Returns:
    Teacher(graphdef of `models/vq.VQTokenizer`, its parameters (the run's encoder, i.e.
    its backbone, and heads/quantizer; not the decoder) as an nnx.State of jax arrays,
    info={"num_codes": codebook size, "in_channels": image channels it encodes}).

  Raises:
    DataError: one line naming `method_args.tokenizer_workdir` and the command that trains
      a tokenizer, if it is unset, missing, has no config.json or checkpoint, holds another
      method's run, or its checkpoint does not match its config.json.
  """
  config, path = _saved_run(workdir)
  heads = from_mapping(vq_tokenizer.Heads, config["heads"], "heads.")
  metadata = _read_state(path, restore=False)["params"]
  in_channels = _saved_leaf(metadata, ("encoder", "stem", "kernel")).shape[2]
  graphdef, state = nnx.split(nnx.eval_shape(lambda: _build(config, heads, in_channels)))
  saved = _read_state(path, restore=True)["params"]

  def restore(key_path, abstract):
    value = np.asarray(_saved_leaf(saved, [getattr(k, "key", getattr(k, "idx", k))
                                           for k in key_path]))
    if value.shape != abstract.shape:
      raise DataError(f"tokenizer parameter {'/'.join(map(str, key_path))} in {path} has shape "
                      f"{value.shape}, its config.json says {abstract.shape}")
    return jnp.asarray(value, abstract.dtype)

  pure = jax.tree_util.tree_map_with_path(restore, nnx.to_pure_dict(state))
  nnx.replace_by_pure_dict(state, pure)
  return Teacher(graphdef, state, info={"num_codes": heads.num_codes,
                                        "in_channels": int(in_channels)})

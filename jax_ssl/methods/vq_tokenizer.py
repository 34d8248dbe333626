"""VQ tokenizer: a small VQ-VAE trained to reconstruct the view; BEiT's visual tokens.

BEiT (Bao et al., ICLR 2022) predicts the ids that DALL-E's discrete VAE gives each image
patch; that tokenizer cannot be downloaded here, so this method trains one in-project with
the same trainer: the backbone is `models/vq.py`'s conv encoder, which downsamples by
`model.patch_size` (the ViT's patch size, so one code per ViT token); the heads are the
quantizer (a 1x1 projection and a codebook of `num_codes` x `code_dim`, cosine lookup) and
the decoder. Objective: the VQ-VAE loss (van den Oord et al., NeurIPS 2017): pixel MSE of
the reconstruction from the straight-through codes + codebook loss + beta x commitment.
Logged: `reconstruction` (MSE on [0, 1] pixels), `perplexity` (exp entropy of the batch's
code usage) and `codes_used` (fraction of the codebook used in the batch).

`load_tokenizer(workdir)` reads a trained run back (its config.json and latest checkpoint)
as a frozen `VQTokenizer` for `beit`.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx

from jax_ssl import checkpoint, fs, losses
from jax_ssl.errors import DataError
from jax_ssl.methods.spec import MethodSpec, SSLModel, StepContext
from jax_ssl.models import vq

TRAIN_COMMAND = ("python -m jax_ssl.train --config experiments/fashion_mnist/vq_tokenizer.py "
                 "--workdir DIR")


def make_heads(backbone: vq.VQEncoder, head_args: Mapping[str, Any],
               method_args: Mapping[str, Any], rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"quantizer", "decoder"} from the head keys num_codes / code_dim / decoder_width."""
  del method_args
  return {"quantizer": vq.VectorQuantizer(backbone.feature_dim, head_args["num_codes"],
                                          head_args["code_dim"], rngs=rngs),
          "decoder": vq.VQDecoder(head_args["code_dim"], head_args["decoder_width"],
                                  backbone.patch_size, backbone.in_channels, rngs=rngs)}


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, *, commitment_weight: float):
  images = views[0]
  ids, latents, codes = model.heads["quantizer"](model.backbone.feature_map(images))
  # Straight-through: the decoder sees the codes, the encoder gets the decoder's gradient.
  straight_through = latents + jax.lax.stop_gradient(codes - latents)
  reconstruction = model.heads["decoder"](straight_through)
  loss, terms = losses.vq_vae(reconstruction, images, latents, codes, commitment_weight)
  num_codes = model.heads["quantizer"].codebook.shape[0]
  used = jnp.sum(jnp.any(jax.nn.one_hot(ids.reshape(-1), num_codes) > 0, axis=0))
  return loss, {**terms, "perplexity": losses.perplexity(ids, num_codes),
                "codes_used": used / num_codes}, {}


SPEC = MethodSpec(
    name="vq_tokenizer",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    default_method_args={"commitment_weight": 0.25},
    patch_tokens=True,  # make_heads builds the decoder from the encoder's patch size
    backbones=vq.BACKBONES,
)


def _saved_run(workdir: str) -> tuple[ml_collections.ConfigDict, str]:
  """(the run's config, the absolute path of its latest complete checkpoint's TrainState).

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
  config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
  if config.method != SPEC.name:
    raise DataError(f"method_args.tokenizer_workdir={workdir} holds a {config.method!r} run, "
                    f"not a {SPEC.name!r} one; train one with {TRAIN_COMMAND}")
  return config, fs.join(workdir, "checkpoints", str(step), "state")


def codebook_size(workdir: str) -> int:
  """The number of codes of the tokenizer saved in `workdir` (its heads.num_codes)."""
  return int(_saved_run(workdir)[0].heads.num_codes)


def _build(config: ml_collections.ConfigDict, in_channels: int) -> vq.VQTokenizer:
  rngs = nnx.Rngs(0)
  encoder = vq.make_encoder(config.model.backbone, width=config.model.width,
                            patch_size=config.model.patch_size, in_channels=in_channels,
                            rngs=rngs)
  quantizer = make_heads(encoder, config.heads.to_dict(), {}, rngs)["quantizer"]
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


def _abstract_tokenizer(workdir: str) -> tuple[nnx.GraphDef, nnx.State, str]:
  config, path = _saved_run(workdir)
  metadata = _read_state(path, restore=False)["params"]
  in_channels = _saved_leaf(metadata, ("encoder", "stem", "kernel")).shape[2]
  graphdef, state = nnx.split(nnx.eval_shape(lambda: _build(config, in_channels)))
  return graphdef, state, path


@functools.lru_cache(maxsize=None)
def tokenizer_graphdef(workdir: str) -> nnx.GraphDef:
  """The structure of the tokenizer saved in `workdir` (read from its config.json and
  checkpoint metadata; nothing restored). Cached per path: the objective rebuilds the
  module from it and the parameters held in the method state at every trace."""
  return _abstract_tokenizer(workdir)[0]


def load_tokenizer(workdir: str) -> nnx.State:
  """The parameters of the latest checkpoint of the `vq_tokenizer` run in `workdir`: its
  encoder (the run's backbone) and quantizer (heads/quantizer), not the decoder; the
  structure of `tokenizer_graphdef(workdir)`."""
  _, state, path = _abstract_tokenizer(workdir)
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
  return state

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

A trained run is read back as BEiT's frozen teacher (its encoder and quantizer,
`models/vq.VQTokenizer`) by the build step, `jax_ssl/teachers.py`, never by a method.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses
from jax_ssl.config.typed import check, check_positive
from jax_ssl.methods.spec import Metrics, MethodSpec, SSLModel, StepContext
from jax_ssl.models import vq


@dataclasses.dataclass(frozen=True)
class Args:
  """`method_args.*`: `commitment_weight`, the VQ-VAE paper's beta (0.25, its value)."""

  commitment_weight: float = 0.25

  def validate(self) -> None:
    check(self.commitment_weight >= 0,
          f"method_args.commitment_weight={self.commitment_weight}; must be >= 0")


@dataclasses.dataclass(frozen=True)
class Heads:
  """`heads.*`: the codebook (`num_codes` x `code_dim`) and the decoder's width. Defaults:
  experiments/imagenet/vq_tokenizer.py's, DALL-E's 8192 codes."""

  num_codes: int = 8192
  code_dim: int = 32
  decoder_width: int = 64

  def validate(self) -> None:
    check_positive("heads", self, "num_codes", "code_dim", "decoder_width")


def make_heads(backbone: vq.VQEncoder, heads: Heads, args: Args,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"quantizer", "decoder"} of the sizes in `heads`."""
  del args  # the heads' shapes are all in `heads`
  return {"quantizer": vq.VectorQuantizer(backbone.feature_dim, heads.num_codes,
                                          heads.code_dim, rngs=rngs),
          "decoder": vq.VQDecoder(heads.code_dim, heads.decoder_width,
                                  backbone.patch_size, backbone.in_channels, rngs=rngs)}


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, Any]:
  """The VQ-VAE loss of reconstructing views[0] through the codebook; logs its terms, the
  batch's code perplexity and the share of codes used. Deterministic (no rng)."""
  del method_state, context
  images = views[0]
  ids, latents, codes = model.heads["quantizer"](model.backbone.feature_map(images))
  # Straight-through: the decoder sees the codes, the encoder gets the decoder's gradient.
  straight_through = latents + jax.lax.stop_gradient(codes - latents)
  reconstruction = model.heads["decoder"](straight_through)
  loss, terms = losses.vq_vae(reconstruction, images, latents, codes, args.commitment_weight)
  num_codes = model.heads["quantizer"].codebook.shape[0]
  used = jnp.sum(jnp.any(jax.nn.one_hot(ids.reshape(-1), num_codes) > 0, axis=0))
  return loss, {**terms, "perplexity": losses.perplexity(ids, num_codes),
                "codes_used": used / num_codes}, {}


SPEC = MethodSpec(
    name="vq_tokenizer",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    patch_tokens=True,  # make_heads builds the decoder from the encoder's patch size
    backbones=vq.BACKBONES,
)

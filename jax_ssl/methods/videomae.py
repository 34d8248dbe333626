"""VideoMAE: a video ViT encoder sees 10% of the tubelets; MAE's decoder rebuilds the rest.

Tong, Song, Wang & Wang, "VideoMAE: Masked Autoencoders are Data-Efficient Learners for
Self-Supervised Video Pre-Training", NeurIPS 2022; the reference code is MCG-NJU/VideoMAE
(masking_generator.py, modeling_pretrain.py, engine_for_pretraining.py). MAE on clips:

* **Tube masking** (`masking.tube_mask`): per clip, int(0.9 * h * w) spatial positions are
  masked in every time slot (`TubeMaskingGenerator`), so a masked tubelet cannot be copied
  from the same place a frame earlier.
* **Encoder**: the shared backbone (`models/video_vit.VideoViT`: tubelets of t x p x p x C,
  2 x 16 x 16 by default, tokens time-major) on the visible tokens only, as MAE's.
* **Decoder**: MAE's (`mae.MAEDecoder`) with VideoMAE's 1-D sinusoid position table over
  the N tokens (`positions="sinusoid_1d"`); it predicts every tubelet's t * p * p * C pixels,
  the loss counts the masked ones.
* **Targets** (`normalized_tubelets`, `normlize_target=True` in the reference): each
  tubelet's pixels standardised per colour channel over its t * p * p pixels (mean, and the
  unbiased std plus 1e-6: `(x - mean) / (std + 1e-6)`), not over all its values as MAE's
  `norm_pix`.

The loss is the mean squared error over the masked tubelets (`losses.mae`; the reference's
`nn.MSELoss` over the masked tokens' outputs is the same number). The mask is drawn from the
step's rng, the same on every device. Evaluation features are the backbone's pooled tokens of
the whole clip (the reference fine-tunes on the mean of the tokens).

Differences from the reference: the target is computed from the augmented view as the
trainer hands it, where the reference un-normalises its ImageNet-normalised input to [0, 1]
first; a per-channel affine change of the pixels leaves a per-channel standardisation
unchanged but for the 1e-6, so this is the same target. The encoder-to-decoder linear map
has a bias (MAE's; VideoMAE's `encoder_to_decoder` has none).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike

from jax_ssl import losses, masking
from jax_ssl.config.typed import check
from jax_ssl.methods import mae, mim
from jax_ssl.methods.spec import Metrics, MethodSpec, SSLModel, StepContext
from jax_ssl.models import video_vit


@dataclasses.dataclass(frozen=True)
class Args:
  """`method_args.*` of VideoMAE (defaults: the paper's Kinetics-400 setting): `mask_ratio`
  of each clip's spatial positions masked in every time slot (tube masking; 0.75 for its
  UCF101 recipe); `norm_pix`: the target is each tubelet's pixels standardised per channel
  (`normlize_target`, the reference's default)."""

  mask_ratio: float = 0.9
  norm_pix: bool = True

  def validate(self) -> None:
    mim.check_mask_ratio(self.mask_ratio)


@dataclasses.dataclass(frozen=True)
class Heads(mae.Heads):
  """`heads.*`: the decoder's width, blocks and heads (defaults: VideoMAE's ViT-B decoder,
  384 wide, 4 blocks (`--decoder_depth 4` in every pretraining script), 6 heads)."""

  decoder_dim: int = 384
  decoder_depth: int = 4
  decoder_num_heads: int = 6


def video_patchify(clips: ArrayLike, tubelet_size: int, patch_size: int) -> jax.Array:
  """[B, T, H, W, C] clips -> [B, N, t * p * p * C] tubelets, tokens time-major (slot,
  row, column) as a video ViT's; each tubelet flattened (frame, row, column, channel), the
  reference's `rearrange('b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2) c')`."""
  clips = jnp.asarray(clips)
  batch, frames, height, width, channels = clips.shape
  if frames % tubelet_size or height % patch_size or width % patch_size:
    raise ValueError(f"clips of {frames}x{height}x{width} do not split into tubelets of "
                     f"{tubelet_size}x{patch_size}x{patch_size}")
  return video_vit.tubeletify(clips, tubelet_size, patch_size)


def normalized_tubelets(tubelets: ArrayLike, channels: int, epsilon: float = 1e-6) -> jax.Array:
  """VideoMAE's normalised pixel target: each tubelet standardised per colour channel.

  Args:
    tubelets: [..., P * C] pixels of each tubelet, channel fastest (`video_patchify`).
    channels: C.
    epsilon: added to the standard deviation.

  Returns:
    [..., P * C]: (x - mean) / (std + epsilon), the mean and the unbiased (ddof 1) standard
    deviation over the P = t * p * p pixels of each channel of each tubelet
    (engine_for_pretraining.py: `videos_squeeze.var(dim=-2, unbiased=True).sqrt() + 1e-6`).
  """
  tubelets = jnp.asarray(tubelets, jnp.float32)
  per_channel = tubelets.reshape(*tubelets.shape[:-1], -1, channels)
  mean = jnp.mean(per_channel, axis=-2, keepdims=True)
  std = jnp.sqrt(jnp.var(per_channel, axis=-2, ddof=1, keepdims=True))
  return ((per_channel - mean) / (std + epsilon)).reshape(tubelets.shape)


def make_heads(backbone: Any, heads: Heads, args: Args, rngs: nnx.Rngs
               ) -> dict[str, nnx.Module]:
  """{"decoder": MAEDecoder} of the sizes in `heads`, with VideoMAE's 1-D position table
  over the backbone's N tokens."""
  del args  # the decoder's shape is all in `heads`
  check(hasattr(backbone, "token_grid"),
        "method=videomae needs a video ViT backbone (a model.backbone='vit_*' on a video "
        "dataset); use method=mae for images")
  return {"decoder": mae.MAEDecoder(backbone, heads.decoder_dim, heads.decoder_depth,
                                    heads.decoder_num_heads, positions="sinusoid_1d",
                                    rngs=rngs)}


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, Any]:
  """MSE of the decoder's tubelet pixels on the tube-masked tokens of views[0] ([B, T, S,
  S, C] clips; the mask drawn from `context.rng`, the encoder on the visible tokens only);
  logs the loss."""
  del method_state
  clips, backbone = views[0], model.backbone
  slots, rows, cols = backbone.token_grid
  mask = masking.tube_mask(context.rng, clips.shape[0], slots, rows * cols, args.mask_ratio)
  count = slots * masking.tube_masked_count(rows * cols, args.mask_ratio)
  indices = masking.mask_indices(mask, count)
  encoded = backbone.encode_tokens(backbone.embed_patches(clips), indices.keep)
  pred = model.heads["decoder"](encoded, indices.restore)
  tubelet_size = backbone.patch_pixels // (backbone.patch_size ** 2 * backbone.in_channels)
  target = video_patchify(clips, tubelet_size, backbone.patch_size)
  if args.norm_pix:
    target = normalized_tubelets(target, backbone.in_channels)
  loss = losses.mae(pred, target, mask)
  return loss, {"videomae": loss}, {}


SPEC = MethodSpec(
    name="videomae",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    patch_tokens=True,
)

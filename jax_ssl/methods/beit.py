"""BEiT: predict the visual-token ids of blockwise-masked patches.

Bao et al., "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022. A frozen tokenizer
maps every patch of the view to a code id; about 40% of the patches are masked in blocks
(`mim.block_mask`), their embeddings replaced by a learned mask token, and the ViT's outputs
at the masked positions go through a linear head over the codebook; the loss is the
cross-entropy with the tokenizer's ids there (`losses.beit`).

The tokenizer: the paper uses DALL-E's discrete VAE (8192 codes, trained on 400M images),
which cannot be downloaded here; this method reads a `vq_tokenizer` run trained in-project
(`method_args.tokenizer_workdir`, its config.json and latest checkpoint) and sizes the head
from its codebook. The tokenizer gets the same view as the ViT; its encoder downsamples by
the ViT's patch size, so there is one id per token.

The frozen tokenizer's parameters live in the method state (never updated, no gradient:
the step differentiates the trainable params only), not in a closure, because
  * a resumed run restores them from its own checkpoint: exact even if the tokenizer run
    is retrained or overwritten meanwhile;
  * they are replicated and saved like every other piece of state, and a large tokenizer
    (DALL-E's is ~54M parameters) is not baked into the jitted program as constants;
  * the step function stays a pure function of its arguments.
Their structure (the module to merge them into) is read from the tokenizer's config.json.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses
from jax_ssl.errors import ConfigError
from jax_ssl.methods import mim, vq_tokenizer
from jax_ssl.methods.spec import MethodSpec, SSLModel, StepContext
from jax_ssl.models import vit


def make_heads(backbone: vit.VisionTransformer, head_args: Mapping[str, Any],
               method_args: Mapping[str, Any], rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"mask_token", "predictor": Linear(D -> tokenizer codebook size)}; no head keys."""
  del head_args
  num_codes = vq_tokenizer.codebook_size(method_args["tokenizer_workdir"])
  return mim.mask_token_heads(backbone, num_codes, rngs)


def init_method_state(method_args: Mapping[str, Any], head_args: Mapping[str, Any]):
  del head_args
  return {"tokenizer": vq_tokenizer.load_tokenizer(method_args["tokenizer_workdir"])}


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, *, tokenizer_workdir: str, mask_ratio: float,
              min_block_patches: int):
  images, backbone = views[0], model.backbone
  tokenizer = nnx.merge(vq_tokenizer.tokenizer_graphdef(tokenizer_workdir),
                        jax.lax.stop_gradient(method_state["tokenizer"]))
  token_ids = tokenizer(images)
  if token_ids.shape[1] != backbone.num_patches:
    raise ConfigError(
        f"the tokenizer in method_args.tokenizer_workdir={tokenizer_workdir!r} gives "
        f"{token_ids.shape[1]} ids per image, the ViT has {backbone.num_patches} patches; "
        f"train the tokenizer with model.patch_size={backbone.patch_size} on "
        f"{backbone.image_size} px views")
  mask, masked = mim.block_mask(context.rng, backbone, images.shape[0], mask_ratio=mask_ratio,
                                min_block_patches=min_block_patches)
  encoded = mim.at_positions(mim.encode_masked(model, images, mask), masked)
  logits = model.heads["predictor"](encoded).astype(jnp.float32)  # [B, M, K]
  labels = mim.at_positions(token_ids, masked)
  loss = losses.beit(logits, labels, jnp.ones(labels.shape, bool))
  accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
  return loss, {"beit": loss, "token_accuracy": accuracy}, {}


SPEC = MethodSpec(
    name="beit",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    init_method_state=init_method_state,
    # The paper masks 75 of 196 patches (~40%; 0.4 masks 79) in blocks of >= 16 patches.
    default_method_args={"tokenizer_workdir": "", "mask_ratio": 0.4, "min_block_patches": 16},
    patch_tokens=True,
)

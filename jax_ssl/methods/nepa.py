"""NEPA: a causal ViT predicts the next patch's input embedding.

Xu et al., "Next-Embedding Prediction Makes Strong Vision Learners", 2025 (Next-Embedding
Predictive Autoregression). The image's patch embeddings, in raster order after the CLS
token, run through the backbone with causal attention; the output at each position
(after the final LayerNorm) is pulled towards the *input* embedding of the next patch,
which is a stop-gradient target (`losses.nepa`: negative cosine similarity). No decoder,
no prediction head, no masking, no EMA: the patch embedding is trained by the gradient
through the inputs only, and the targets move with it.

Following the reference code (github.com/SihanXU/nepa: `ViTNepaForPreTraining`,
`ViTNepaEmbeddings`, `prediction_loss`):
  * The targets are the patch embeddings themselves (the patch projection's outputs, before
    any position: the reference has no absolute position embedding, only RoPE in
    attention; with `model.pos_embedding` "sincos"/"learned" here the target still leaves
    it out), neither normalised nor projected.
  * The output at the CLS position predicts the first patch, patch t's output predicts
    patch t + 1, the last output predicts nothing (the reference's shift over [CLS,
    patches]). Register tokens (`model.num_registers`) sit between: the last prefix token
    predicts the first patch, and no register is a target. Without a CLS token the loss
    covers the N - 1 patch-to-patch pairs.
  * The backbone must be causal (`model.causal=True`, refused otherwise: with full
    attention position t sees patch t + 1 and copies it). Its pooled features, used by the
    evaluation and fine-tuning, attend bidirectionally, as the reference fine-tunes
    (`is_causal: false` in its sft configs).
  * The reference's ViT: RoPE (base 100), QK-norm, LayerScale 1e-5, and (paper) SwiGLU:
    `model.rope`, `qk_norm`, `layer_scale`, `mlp`, set in the experiment files.

One view per image (random resized crop + flip, as the reference's pretraining transform).
The method keeps no state besides the parameters (no EMA, no queue): resuming it exactly is
what the generic resume tests check.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses
from jax_ssl.config.typed import check
from jax_ssl.methods.spec import Metrics, MethodSpec, NoArgs, NoHeads, SSLModel, StepContext
from jax_ssl.models import vit


def make_heads(backbone: vit.VisionTransformer, heads: NoHeads, args: NoArgs,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """No heads; refuses a backbone without causal attention (the first place that sees it)."""
  del heads, args, rngs
  check(backbone.causal,
        "method='nepa' needs model.causal=True: with full attention each position sees the "
        "next patch it is asked to predict (set model.causal=True, as the NEPA recipes do)")
  return {}


def next_embedding_pairs(backbone: vit.VisionTransformer, images: jax.Array
                         ) -> tuple[jax.Array, jax.Array]:
  """(outputs, inputs) of the shifted comparison `losses.nepa` makes, [B, T, D] each: the
  encoded sequence from the last prefix token on (all of it without a prefix) and the
  patch embeddings behind one placeholder (never a target) when there is a prefix."""
  tokens = backbone.embed_patches(images)
  encoded = backbone.encode_tokens(tokens)
  prefix = backbone.num_prefix_tokens
  if not prefix:
    return encoded, tokens
  placeholder = jnp.zeros_like(tokens[:, :1])
  return encoded[:, prefix - 1:], jnp.concatenate([placeholder, tokens], axis=1)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: NoArgs) -> tuple[jax.Array, Metrics, Any]:
  """Negative cosine similarity of each causal output with the next patch's input
  embedding (stop-gradient), on views[0]; logs the loss."""
  del method_state, context, args
  outputs, inputs = next_embedding_pairs(model.backbone, views[0])
  loss = losses.nepa(outputs, inputs)
  return loss, {"nepa": loss}, {}


SPEC = MethodSpec(
    name="nepa",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    patch_tokens=True,
)

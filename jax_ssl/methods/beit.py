"""BEiT: predict the visual-token ids of blockwise-masked patches.

Bao et al., "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022. A frozen tokenizer
maps every patch of the view to a code id; about 40% of the patches are masked in blocks
(`mim.block_mask`), their embeddings replaced by a learned mask token, and the ViT's outputs
at the masked positions go through a linear head over the codebook; the loss is the
cross-entropy with the tokenizer's ids there (`losses.beit`).

The tokenizer: the paper uses DALL-E's discrete VAE (8192 codes, trained on 400M images),
which cannot be downloaded here; BEiT learns from a `vq_tokenizer` run trained in-project
(`method_args.tokenizer_workdir`). The build step reads that run (`load_teacher`:
`jax_ssl/teachers.py`, its config.json and latest checkpoint; nothing in this module reads a
file) and hands it over as a `spec.Teacher`: its codebook size sizes the head, its
parameters go into the method state, its structure comes to the objective as
`context.teacher`. The tokenizer gets the same view as the ViT; its encoder downsamples by
the ViT's patch size, so there is one id per token (checked when the heads are made).

The frozen tokenizer's parameters live in the method state (never updated, no gradient:
the step differentiates the trainable params only), not in a closure, because
  * a resumed run restores them from its own checkpoint: exact even if the tokenizer run
    is retrained, overwritten or deleted meanwhile;
  * they are replicated and saved like every other piece of state, and a large tokenizer
    (DALL-E's is ~54M parameters) is not baked into the jitted program as constants;
  * the step function stays a pure function of its arguments.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses
from jax_ssl.config.typed import check
from jax_ssl.methods import mim
from jax_ssl.methods.spec import Metrics, MethodSpec, NoHeads, SSLModel, StepContext, Teacher
from jax_ssl.models import vit


@dataclasses.dataclass(frozen=True)
class Args(mim.BlockMaskArgs):
  """`method_args.*` of BEiT: `tokenizer_workdir`, the `vq_tokenizer` run whose codes are
  the targets (required; the build step refuses it unset, in one line), and the blockwise
  mask (`mim.BlockMaskArgs`: the paper's 40% in blocks of >= 16 patches)."""

  tokenizer_workdir: str = ""


def load_teacher(args: Args) -> Teacher:
  """The frozen tokenizer of `args.tokenizer_workdir` (`teachers.load_vq_tokenizer`); called
  by the build step only. Imported here, not at the top: jax_ssl.teachers reads Orbax
  checkpoints (the `[train]` extra) and imports the method registry's vq_tokenizer, while
  the methods themselves need neither."""
  from jax_ssl import teachers  # pylint: disable=g-import-not-at-top
  return teachers.load_vq_tokenizer(args.tokenizer_workdir)


def make_heads(backbone: vit.VisionTransformer, heads: NoHeads, args: Args, rngs: nnx.Rngs,
               *, teacher: Teacher) -> dict[str, nnx.Module]:
  """{"mask_token", "predictor": Linear(D -> the teacher's codebook size)}; no head keys.

  Refuses (one line) a tokenizer that does not give one id per ViT patch of the view, before
  any step runs."""
  del heads
  check(teacher.info["in_channels"] == backbone.in_channels,
        f"the tokenizer in method_args.tokenizer_workdir={args.tokenizer_workdir!r} encodes "
        f"{teacher.info['in_channels']}-channel images, the ViT's have "
        f"{backbone.in_channels}; train the tokenizer on this dataset")
  view = jax.ShapeDtypeStruct((1, backbone.image_size, backbone.image_size,
                               backbone.in_channels), jnp.float32)
  ids = jax.eval_shape(lambda params, images: nnx.merge(teacher.graphdef, params)(images),
                       teacher.params, view)
  check(ids.shape[1] == backbone.num_patches,
        f"the tokenizer in method_args.tokenizer_workdir={args.tokenizer_workdir!r} gives "
        f"{ids.shape[1]} ids per image, the ViT has {backbone.num_patches} patches; "
        f"train the tokenizer with model.patch_size={backbone.patch_size} on "
        f"{backbone.image_size} px views")
  return mim.mask_token_heads(backbone, teacher.info["num_codes"], rngs)


def init_method_state(args: Args, heads: NoHeads, *, teacher: Teacher) -> dict[str, Any]:
  """{"tokenizer": the teacher's parameters}: saved and restored with the run's own state."""
  del args, heads
  return {"tokenizer": teacher.params}


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, Any]:
  """Cross-entropy of the predicted code ids on the blockwise-masked patches of views[0]
  (mask drawn from `context.rng`), the targets the frozen tokenizer's ids of the same view
  (`context.teacher` merged with `method_state["tokenizer"]`); logs the loss and the token
  accuracy."""
  images, backbone = views[0], model.backbone
  tokenizer = nnx.merge(context.teacher, jax.lax.stop_gradient(method_state["tokenizer"]))
  token_ids = tokenizer(images)
  mask, masked = mim.block_mask(context.rng, backbone, images.shape[0],
                                mask_ratio=args.mask_ratio,
                                min_block_patches=args.min_block_patches)
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
    args_type=Args,
    heads_type=NoHeads,
    init_method_state=init_method_state,
    load_teacher=load_teacher,
    patch_tokens=True,
)

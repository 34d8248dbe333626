r"""BEiT, ViT-B/16 on ImageNet-1k: the paper's recipe (83.2% fine-tuned top-1 after 800 epochs).

Two commands, in this order: the visual tokenizer, then BEiT (which reads that run's
config.json and latest checkpoint from `method_args.tokenizer_workdir`):

  python -m jax_ssl.train --config experiments/imagenet/vq_tokenizer.py --workdir runs/vq_tokenizer_in1k
  python -m jax_ssl.train --config experiments/imagenet/beit_vit_base.py --workdir gs://.../beit_in1k

Needs `imagenet2012` prepared as array_record in the TFDS data dir. Recipe (Bao et al.,
"BEiT: BERT Pre-Training of Image Transformers", ICLR 2022, sec. 2 and appendix): ViT-B/16
with CLS token; blockwise masking of ~40% of the 196 patches (the paper: at most 75, in
blocks of >= 16 patches with aspect ratio 0.3-3.3; 0.4 here masks 79); masked patch
embeddings replaced by a learned mask token; a linear head over the visual-token codebook
at the masked positions, cross-entropy; random resized crop 0.08-1, flip, colour jitter
0.4/0.4/0.4; AdamW (0.9, 0.999), lr 1.5e-3 at batch 2048 (1.875e-4 x B/256), weight decay
0.05, 10 warmup epochs, cosine, 800 epochs. Paper: 83.2% top-1 after fine-tuning
(ViT-B, 224 px; the abstract). Fine-tuning (`--protocols finetune`): BEiT's 100
epochs, lr 4e-3 at batch 1024 (1e-3 x B/256), layer decay 0.65, weight decay 0.05, 20
warmup epochs, label smoothing 0.1.
Differences: the tokenizer is an in-project VQ-VAE (experiments/imagenet/vq_tokenizer.py)
fed the 224 px view itself, not DALL-E's discrete VAE (8192 codes, trained on 400M
images, fed a 112 px copy), which cannot be downloaded here; learned absolute position
embeddings instead of BEiT's shared relative position bias; no layer scale (0.1), no
stochastic depth (0.1), no gradient clipping (3.0); fine-tuning without mixup, cutmix,
RandAugment and drop path.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _imagenet_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.make_config(
      runlocal=runlocal,
      method="beit",
      method_args={"tokenizer_workdir": "runs/vq_tokenizer_in1k"},
      augment=base.augment(jitter_prob=1.0, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.0, grayscale_prob=0.0,
                           blur_prob=0.0),
      global_batch_size=2048,
      optimizer=base.optimizer("adamw", 1.5e-3 * 256 / 2048, weight_decay=0.05),
      epochs=800, warmup_epochs=10,
      model=dict(backbone="vit_base", pos_embedding="learned",
                 dtype="bfloat16"),  # mixed precision, as the papers' fp16
      # 56 px smoke-test views: 8 px patches (7x7 tokens), as the tokenizer's smoke test.
      runlocal_model=dict(backbone="vit_tiny", patch_size=8, dim=32, depth=2, num_heads=2,
                          dtype="float32"))
  steps_per_epoch = base.TRAIN_EXAMPLES // config.eval.finetune.batch_size
  config.eval.finetune.update(base_learning_rate=1e-3, warmup_steps=20 * steps_per_epoch,
                              layer_decay=0.65)
  if runlocal:
    config.method_args.tokenizer_workdir = "runs/vq_tokenizer_in1k_runlocal"
    config.eval.finetune.update(warmup_steps=0)
  return config

"""The typed `eval` section of an experiment (schema.py's `Experiment.eval`): what runs after
training, and the fine-tuning protocol's recipe. Frozen dataclasses whose defaults are the
schema; each checks its own values in `validate()` (one line naming the key, the value and
what is allowed). Re-exported by schema.py.
"""

from __future__ import annotations

import dataclasses

from jax_ssl.config.typed import check

# The fine-tuning of eval.protocols "finetune" and of `python -m jax_ssl.evaluate`.
FINETUNE_OPTIMIZERS = ("adamw", "sgd")
EVAL_ENCODERS = ("method", "online", "target")


def scale_pair(key: str, pair: tuple[float, float]) -> None:
  """A crop's area range: 0 < low <= high <= 1, or one line naming `key`."""
  low, high = pair
  check(0 < low <= high <= 1, f"{key}={tuple(pair)}; need 0 < low <= high <= 1")


@dataclasses.dataclass(frozen=True)
class Finetune:
  """Fine-tuning (eval.protocols "finetune"): MAE's recipe without mixup/RandAugment;
  layer_decay applies to backbones with layer_index (ViT)."""

  steps: int = 500
  batch_size: int = 256
  base_learning_rate: float = 1e-3
  weight_decay: float = 0.05
  warmup_steps: int = 50
  label_smoothing: float = 0.1
  layer_decay: float = 0.75
  optimizer: str = "adamw"
  crop_scale: tuple[float, float] = (0.8, 1.0)
  low_label: bool = True  # also fine-tune on the low-label subsets of eval.protocols

  def validate(self) -> None:
    ft = "eval.finetune"
    check(self.steps > 0, f"{ft}.steps={self.steps}; must be positive")
    check(self.batch_size > 0, f"{ft}.batch_size={self.batch_size}; must be positive")
    check(self.base_learning_rate > 0,
          f"{ft}.base_learning_rate={self.base_learning_rate}; must be > 0")
    check(self.weight_decay >= 0, f"{ft}.weight_decay={self.weight_decay}; must be >= 0")
    check(self.warmup_steps >= 0, f"{ft}.warmup_steps={self.warmup_steps}; must be >= 0")
    check(0 <= self.label_smoothing < 1,
          f"{ft}.label_smoothing={self.label_smoothing}; must be in [0, 1)")
    check(0 < self.layer_decay <= 1,
          f"{ft}.layer_decay={self.layer_decay}; must be in (0, 1] (1: no layer-wise decay)")
    check(self.optimizer in FINETUNE_OPTIMIZERS,
          f"{ft}.optimizer={self.optimizer!r}; use 'adamw' or 'sgd'")
    scale_pair(f"{ft}.crop_scale", self.crop_scale)


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """What runs after training (jax_ssl/evaluate/protocols.py)."""

  batch_size: int = 1024
  knn_k: int = 200
  knn_temperature: float = 0.07
  baselines: bool = False  # also evaluate raw pixels and the random-init encoder
  train_limit: int = 0  # 0: the whole split
  test_limit: int = 0
  protocols: str | tuple[str, ...] = "knn,linear,lowlabel-1%"
  knn_k_sweep: tuple[int, ...] = (10, 20, 100, 200)
  low_label_seeds: tuple[int, ...] = (0, 1, 2)
  report: bool = True  # pictures + DIR/report.md after the evaluation
  # "method" (MethodSpec.evaluation_encoder), "online" or "target" (EMA target)
  encoder: str = "method"
  # the evaluation view's central crop of the shorter side (ImageNet: 0.875)
  crop_fraction: float = 0.875
  # The linear and low-label probes' input on a ViT (kNN keeps the pooled output, as DINO's
  # eval_knn.py): the pooled token of each of the last `linear_blocks` blocks through the
  # final norm, concatenated, and with `linear_avgpool` the last block's mean patch token
  # (DINO's eval_linear.py n_last_blocks / avgpool_patchtokens: 4 / False for ViT-S, 1 /
  # True for ViT-B; VisionTransformer.probe_features)
  linear_blocks: int = 1
  linear_avgpool: bool = False
  finetune: Finetune = Finetune()
  # eval.protocols "attentive" (evaluate/attentive_probe.py): V-JEPA's attentive probe
  # trained with AdamW on the cached frozen patch tokens; num_heads 0: the ViT's own heads
  # (ResNets: feature_dim // 64)
  attentive_steps: int = 1000
  attentive_batch_size: int = 256
  attentive_learning_rate: float = 1e-3
  attentive_weight_decay: float = 1e-3
  attentive_num_heads: int = 0
  # Video datasets (evaluate/video.py): the label features each protocol runs on, once per
  # key ("label" under the image names, another key K as "K/<name>": Moving Fashion-MNIST's
  # ("label", "motion")); evenly spaced clips per video whose features (fine-tuning: softmax
  # predictions) are averaged; the raw-pixel baseline's centre view in pixels (0:
  # augment.output_size) and frames
  label_keys: tuple[str, ...] = ("label",)
  num_clips: int = 1
  raw_pixel_size: int = 16
  raw_pixel_frames: int = 4

  def validate(self) -> None:
    from jax_ssl.evaluate import protocols  # pylint: disable=g-import-not-at-top
    protocols.parse_protocols(self.protocols)  # ConfigError naming the unknown protocol
    check(self.batch_size > 0, f"eval.batch_size={self.batch_size}; must be positive")
    check(self.knn_k > 0, f"eval.knn_k={self.knn_k}; must be positive")
    check(bool(self.knn_k_sweep) and all(k > 0 for k in self.knn_k_sweep),
          f"eval.knn_k_sweep={self.knn_k_sweep}; give positive integers, e.g. (10, 20, 100, 200)")
    check(bool(self.low_label_seeds),
          f"eval.low_label_seeds={self.low_label_seeds}; give integers, one subset per seed, "
          f"e.g. (0, 1, 2)")
    check(0 < self.crop_fraction <= 1,
          f"eval.crop_fraction={self.crop_fraction}; must be in (0, 1] (1: the whole image; "
          f"0.875: ImageNet's Resize(256) + CenterCrop(224))")
    check(self.linear_blocks >= 1,
          f"eval.linear_blocks={self.linear_blocks}; must be >= 1 (1: the encoder's output)")
    check(self.encoder in EVAL_ENCODERS,
          f"eval.encoder={self.encoder!r}; use 'method' (as the method's paper evaluates), "
          f"'online' or 'target'")
    for key in ("attentive_steps", "attentive_batch_size", "attentive_learning_rate"):
      check(getattr(self, key) > 0, f"eval.{key}={getattr(self, key)}; must be > 0")
    check(self.attentive_weight_decay >= 0,
          f"eval.attentive_weight_decay={self.attentive_weight_decay}; must be >= 0")
    check(self.attentive_num_heads >= 0,
          f"eval.attentive_num_heads={self.attentive_num_heads}; must be >= 0 (0: the "
          f"encoder's own heads)")
    check(bool(self.label_keys) and len(set(self.label_keys)) == len(self.label_keys)
          and all(k and "/" not in k for k in self.label_keys),
          f"eval.label_keys={tuple(self.label_keys)}; give distinct label feature names "
          f"without '/', e.g. ('label',) or ('label', 'motion')")
    check(self.num_clips >= 1, f"eval.num_clips={self.num_clips}; must be >= 1 (clips per "
          f"test video, e.g. 10 as RSPNet's and SlowFast's tests)")
    check(self.raw_pixel_size >= 0, f"eval.raw_pixel_size={self.raw_pixel_size}; must be >= 0 "
          f"(0: augment.output_size)")
    check(self.raw_pixel_frames >= 1,
          f"eval.raw_pixel_frames={self.raw_pixel_frames}; must be >= 1")

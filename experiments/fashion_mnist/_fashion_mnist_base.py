"""What every Fashion-MNIST experiment shares: data, views, the small encoder, the optimizer,
the 2-core CPU budget and evaluation. Each method file adds `method`, `method_args` and
`heads`, and overrides what its recipe changes."""

import ml_collections
from ml_collections import config_dict


def switches(arg: str | None, *extra: str) -> frozenset[str]:
  """`get_config(arg)`'s switches: `runlocal` (a run of seconds: tiny model, few steps, a
  quick evaluation) and the file's own `extra` ones, joined by ','. Anything else is one
  line naming the accepted switches (jax_ssl.config.load.parse_switches)."""
  from jax_ssl.config.load import parse_switches  # pylint: disable=g-import-not-at-top
  return parse_switches(arg, ("runlocal", *extra))


def base_config(runlocal: bool) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = "fashion_mnist"
  config.dataset.data_dir = config_dict.placeholder(str)      # default: $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.dataset.source_dir = "/usr/share/datasets/fashion-mnist"  # IDX files (fashion_mnist only)
  config.dataset.train_split = "train"
  config.dataset.test_split = "test"
  config.dataset.read_threads = 4
  config.dataset.image_size = 0  # 0: keep the stored size (28x28)
  config.dataset.host_crops = False  # 28x28 images: every view made on device
  config.dataset.num_workers = 0  # the host only batches: threads of the trainer's process
  config.dataset.worker_buffer_size = 2

  # Views: SimCLR's pipeline restricted to what applies to 28x28 grayscale images.
  config.augment = ml_collections.ConfigDict(dict(
      output_size=28, crop_scale=(0.2, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
      jitter_prob=0.8, brightness=0.8, contrast=0.8, saturation=0.0, hue=0.0,
      grayscale_prob=0.0, blur_prob=0.0, blur_sigma=(0.1, 2.0), solarize_prob=0.0,
      solarize_threshold=0.5,
      view_overrides=(),  # per global view: dicts of the keys above (asymmetric views)
      # multi-crop (DINO, SwAV): `num` local crops of `output_size` px after the global views
      local_crops=dict(num=0, output_size=12, crop_scale=(0.05, 0.4), overrides={})))

  config.model = ml_collections.ConfigDict(dict(
      backbone="resnet_small", width=16, stem="cifar",
      final_features=0,  # ResNets: > 0 adds a final 1x1 conv + BN + ReLU to this many channels
      # ViT backbones (vit_tiny ... vit_huge) only: 7x7 tokens of 4x4 px on 28x28 images;
      # depth/dim/num_heads None = the named size's
      patch_size=4, pos_embedding="sincos", cls_token=True, pool="gap", dtype="float32",
      remat=False, depth=None, dim=None, num_heads=None))

  config.optimizer = ml_collections.ConfigDict(dict(
      name="adamw", base_learning_rate=4e-3, lr_scaling="linear", weight_decay=1e-4,
      momentum=0.9, warmup_steps=100, trust_coefficient=0.001,  # trust_coefficient: LARS only
      beta2=0.999))  # AdamW only (momentum is its beta1)

  config.seed = 0
  config.global_batch_size = 256
  config.grad_accum_steps = 1  # > 1: average the gradients of this many micro-batches
  # "micro_batch": each micro-batch's loss alone (fewer negatives, noisier batch statistics);
  # "exact": the whole batch's loss (GradCache), for simclr, moco_v3, barlow_twins, vicreg
  config.grad_accum_mode = "micro_batch"
  config.total_steps = 800
  config.log_every_steps = 50
  config.checkpoint_every_steps = 500
  config.keep_checkpoints = 2

  config.skip_nonfinite_updates = False  # True: skip NaN/Inf steps instead of stopping
  config.evaluate = True
  config.online_probe = False  # True: linear probe on the first view's features, logged
  # "replicated": the whole train state on every device; "fsdp": parameters, optimizer state
  # and EMA targets split over the devices (arrays above fsdp_min_bytes), for models whose
  # state does not fit on one chip (jax_ssl/sharding.py). mesh_shape (data, fsdp), fsdp
  # only: the batch over both axes, the state over `fsdp`; () one `data` axis.
  config.sharding = "replicated"
  config.mesh_shape = ()
  config.fsdp_min_bytes = 64 * 2**10  # smaller arrays (biases, norms) stay replicated
  config.eval = ml_collections.ConfigDict(dict(
      batch_size=1000, knn_k=200, knn_temperature=0.07, baselines=True,
      train_limit=0, test_limit=0,  # 0: the whole split
      # After training; more with `python -m jax_ssl.evaluate --protocols ...`
      # (jax_ssl/evaluate/protocols.py: knn, linear, finetune, lowlabel, lowlabel-<P>%).
      protocols="knn,linear,lowlabel-1%", knn_k_sweep=(10, 20, 100, 200),
      low_label_seeds=(0, 1, 2), report=True,
      # "method": the encoder the method's paper evaluates (DINO: the EMA teacher), or
      # "online" / "target" (the EMA target of methods that have one).
      encoder="method",
      crop_fraction=1.0,  # the evaluation view: the whole 28x28 image
      # Fine-tuning (AdamW, warmup + cosine, as MAE's recipe without mixup/RandAugment);
      # layer_decay applies to backbones with layer_index (ViT), not to the ResNets.
      finetune=dict(steps=500, batch_size=256, base_learning_rate=1e-3, weight_decay=0.05,
                    warmup_steps=50, label_smoothing=0.1, layer_decay=0.75,
                    optimizer="adamw", crop_scale=(0.8, 1.0),
                    low_label=True)))  # also fine-tune on the low-label subsets chosen

  if runlocal:
    config.total_steps = 20
    config.global_batch_size = 64
    config.log_every_steps = 5
    config.checkpoint_every_steps = 10
    config.model.width = 8
    config.optimizer.warmup_steps = 5
    # Every protocol of the file still runs, on 2000 / 1000 images; the baselines, the 3
    # low-label subsets and the report (t-SNE) took most of the smoke test's time.
    config.eval.update(train_limit=2000, test_limit=1000, baselines=False, report=False,
                       low_label_seeds=(0,))
    config.eval.finetune.update(steps=10, batch_size=64, warmup_steps=2)
  return config


def masked_modeling_config(runlocal: bool) -> ml_collections.ConfigDict:
  """`base_config` with what the masked-modeling defaults (MAE, SimMIM, MaskFeat, BEiT) share:
  the small ViT (ViT-Tiny's 4x MLP, sin-cos positions and CLS token; width 128, 6 blocks, 4
  heads, 4x4 patches: 7x7 tokens), AdamW with weight decay 0.05, and fine-tuning as the main
  protocol next to the frozen ones.

  Fine-tuning: 300 steps of batch 128 (0.64 epochs) from the pretrained encoder and, as the
  baseline to beat, from the same seed's random initialisation (`eval.baselines`); only on
  all labels (not on the 1% subsets), so both fit the 2-core budget.
  """
  config = base_config(runlocal)
  config.model.update(dict(backbone="vit_tiny", patch_size=4, dim=128, depth=6, num_heads=4))
  config.optimizer.update(dict(name="adamw", base_learning_rate=1e-3, weight_decay=0.05,
                               momentum=0.9, beta2=0.999))
  config.eval.protocols = "knn,linear,lowlabel-1%,finetune"
  config.eval.finetune.update(steps=300, batch_size=128, warmup_steps=30, low_label=False)
  if runlocal:
    config.model.update(dict(dim=32, depth=2, num_heads=2))
    config.eval.finetune.update(steps=10, batch_size=64, warmup_steps=2)
  return config

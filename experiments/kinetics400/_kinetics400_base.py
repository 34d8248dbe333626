"""What every Kinetics-400 experiment shares: Kinetics-400 as a video folder
(`python -m jax_ssl.prepare_data video_folder --source DIR --name kinetics400`: class
subfolders of the videos; TFDS has no Kinetics builder), 16-frame clips at stride 2 (CVRL:
2 fps... see each file), 224 px clip views of frames resized at prepare time, and the
papers' batch sizes. `runlocal` shrinks everything to seconds."""

import ml_collections


def switches(arg: str | None, *extra: str) -> frozenset[str]:
  from jax_ssl.config.load import parse_switches  # pylint: disable=g-import-not-at-top
  return parse_switches(arg, ("runlocal", *extra))


def base_config(runlocal: bool) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.dataset = ml_collections.ConfigDict(dict(
      name="kinetics400", train_split="train", test_split="test", image_size=0,
      host_crops=False, read_threads=8, num_workers=-1))
  config.clips = ml_collections.ConfigDict(dict(num_frames=16, stride=2))
  config.augment = ml_collections.ConfigDict(dict(output_size=224, crop_scale=(0.3, 1.0)))
  config.model = ml_collections.ConfigDict(dict(backbone="r3d_50", width=None))
  config.optimizer = ml_collections.ConfigDict(dict(
      name="lars", base_learning_rate=0.32, weight_decay=1e-6, warmup_steps=5000))
  config.global_batch_size = 1024
  config.total_steps = 200_000
  config.log_every_steps = 100
  config.checkpoint_every_steps = 2000
  # 10 evenly spaced clips per test video, their features averaged (SlowFast's and RSPNet's
  # multi-clip test); clip retrieval Recall@1/5/10 (RSPNet's protocol) next to the probes.
  config.eval = ml_collections.ConfigDict(dict(
      batch_size=64, baselines=False, num_clips=10,
      protocols="knn,linear,lowlabel-1%,retrieval"))
  if runlocal:
    config.dataset.update(num_workers=0, read_threads=2)
    config.clips.update(num_frames=4, stride=1)
    config.augment.output_size = 32
    config.model.update(backbone="video_cnn_small", width=8)
    config.optimizer.update(name="adamw", base_learning_rate=1e-3, warmup_steps=1)
    config.global_batch_size = 8
    config.total_steps = 3
    config.log_every_steps = 1
    config.checkpoint_every_steps = 3
    config.diagnostics_every_steps = 0
    # 1% of a few videos of 101 / 400 classes leaves classes empty: no low-label probe
    config.eval.update(batch_size=8, num_clips=2, train_limit=16, test_limit=8, report=False,
                       protocols="knn,linear,retrieval")
  return config

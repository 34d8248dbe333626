"""Your own images: `python -m jax_ssl.prepare_data image_folder`, then any experiment names them."""

import glob
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import trainer_subprocess as ts
from conftest import tiny_config
from jax_ssl import train
from jax_ssl.data import image_folder, pipeline
from jax_ssl.errors import ConfigError, DataError

# Class -> colour of a square in the middle of every image of that class.
COLORS = {"circles": (220, 40, 40), "squares": (40, 220, 40), "stripes": (40, 40, 220)}


def make_images(root, per_class=20, labelled=True, seed=0):
  """PNGs of random sizes (24..79 px a side): noise around a centred square of the class colour."""
  rng = np.random.default_rng(seed)
  for name, color in COLORS.items():
    folder = os.path.join(root, name) if labelled else root
    os.makedirs(folder, exist_ok=True)
    for i in range(per_class):
      height, width = rng.integers(24, 80, size=2)
      image = rng.integers(0, 60, size=(height, width, 3)).astype(np.uint8)
      image[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = color
      # Mostly PNG; every 4th stripes image a JPEG (lossy: pixels within a few levels).
      suffix = "jpg" if name == "stripes" and i % 4 == 0 else "png"
      Image.fromarray(image).save(os.path.join(folder, f"{name}_{i:02d}.{suffix}"), quality=95)
  return root


def prepare_cli(*args):
  return subprocess.run([sys.executable, "-m", "jax_ssl.prepare_data", "image_folder", *args],
                        env={**os.environ, "PYTHONPATH": ts.ROOT}, capture_output=True, text=True,
                        timeout=300)


def test_image_folder_builds_trains_and_evaluates(tmp_path):
  source = make_images(str(tmp_path / "images"))
  with open(tmp_path / "images" / "squares" / "broken.png", "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)  # a PNG signature, then nothing readable
  (tmp_path / "images" / "notes.txt").write_text("not an image")
  data_dir = str(tmp_path / "tfds")
  proc = prepare_cli("--source", source, "--name", "my_shapes", "--data_dir", data_dir,
                     "--image_size", "32")
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  assert "skipped notes.txt: not in a class folder" in lines
  assert any(line.startswith("skipped squares/broken.png: OSError: ") for line in lines), proc.stdout
  assert "2 files skipped (listed above)" in lines
  # 20 readable images per class; round(10%) of each class's files (21 for squares) held out.
  assert (f"built 'my_shapes' in {data_dir}/my_shapes/1.0.0: train 54, test 6 images of 32x32x3, "
          f"3 classes (circles, squares, stripes)") in lines

  held_out = image_folder.scan(source, test_fraction=0.1).files["test"]
  assert held_out == image_folder.scan(source, test_fraction=0.1).files["test"]  # a fixed choice
  assert [sum(label == c for _, label in held_out) for c in range(3)] == [2, 2, 2]

  info = pipeline.dataset_info("my_shapes", data_dir=data_dir)
  names = info.features["label"].names
  assert names == ["circles", "squares", "stripes"]
  for split, count in (("train", 54), ("test", 6)):
    source_split = pipeline.load_source("my_shapes", split, data_dir=data_dir)
    assert len(source_split) == count
    for index in range(count):  # every image carries its own class's label
      record = source_split[index]
      assert record["image"].shape == (32, 32, 3)
      center = record["image"][16, 16].astype(int)
      assert np.abs(center - COLORS[names[record["label"]]]).max() <= 8

  # Any experiment trains on it by naming it: here the Fashion-MNIST one, shrunk.
  config = tiny_config("", data_dir, total_steps=2, evaluate=True, global_batch_size=16)
  config.dataset.name = "my_shapes"
  config.eval.update(baselines=False, batch_size=32)
  out = train.train_and_evaluate(config, str(tmp_path / "run"))
  results = json.load(open(tmp_path / "run" / "results.json"))
  assert results == out["results"]
  assert {"method", "dataset", "steps", "train_seconds", "eval_seconds", "knn_top1", "linear_top1",
          "linear_1pct_top1", "linear_1pct_top1_seeds"} <= set(results)
  assert results["dataset"] == "my_shapes" and results["steps"] == 2
  # 6 test images: accuracies are multiples of 1/6 (linear_1pct_top1: the mean of 3 subsets').
  for value in (results["knn_top1"], results["linear_top1"], *results["linear_1pct_top1_seeds"]):
    assert round(value * 6, 6) == round(value * 6) and 0 <= value <= 1
  assert results["linear_1pct_top1"] == pytest.approx(np.mean(results["linear_1pct_top1_seeds"]))


def test_flat_folder_is_unlabelled_and_pretrains_without_evaluation(tmp_path, capsys):
  source = make_images(str(tmp_path / "images"), per_class=4, labelled=False)
  data_dir = str(tmp_path / "tfds")
  builder = image_folder.build(source, name="flat_shapes", data_dir=data_dir, image_size=28,
                               channels=1)
  assert builder.skipped == []
  info = pipeline.dataset_info("flat_shapes", data_dir=data_dir)
  assert set(info.features) == {"image"} and list(info.splits) == ["train"]
  assert info.splits["train"].num_examples == 12  # nothing held out: no labels to test with
  source_split = pipeline.load_source("flat_shapes", "train", data_dir=data_dir)
  assert source_split[0]["image"].shape == (28, 28, 1)

  config = tiny_config("", data_dir, total_steps=2, evaluate=True, global_batch_size=8)
  config.dataset.name = "flat_shapes"
  out = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert out["step"] == 2 and out["results"] is None
  assert not os.path.exists(tmp_path / "run" / "results.json")
  assert ("evaluation skipped: dataset 'flat_shapes' has no labels (an image folder without class "
          f"subfolders); the pretrained encoder is in {tmp_path / 'run'}/checkpoints"
          ) in capsys.readouterr().out


def test_train_and_test_folders_are_the_splits(tmp_path):
  make_images(str(tmp_path / "images" / "train"), per_class=3)
  make_images(str(tmp_path / "images" / "test"), per_class=2, seed=1)
  os.remove(tmp_path / "images" / "test" / "stripes" / "stripes_01.png")
  builder = image_folder.build(str(tmp_path / "images"), name="given_splits",
                               data_dir=str(tmp_path / "tfds"), image_size=16)
  splits = builder.info.splits
  assert (splits["train"].num_examples, splits["test"].num_examples) == (9, 5)
  test = pipeline.load_source("given_splits", "test", data_dir=str(tmp_path / "tfds"))
  labels = sorted(int(test[i]["label"]) for i in range(len(test)))
  assert labels == [0, 0, 1, 1, 2]


def test_resize_modes_give_one_shape(tmp_path):
  # 40 x 80: green | red (the middle 40 columns) | blue.
  image = np.zeros((40, 80, 3), np.uint8)
  image[:, :20] = (0, 255, 0)
  image[:, 20:60] = (255, 0, 0)
  image[:, 60:] = (0, 0, 255)
  path = str(tmp_path / "wide.png")
  Image.fromarray(image).save(path)
  crop = image_folder.load_image(path, image_size=32, resize="shorter_side_center_crop", channels=3)
  assert crop.shape == (32, 32, 3) and np.all(crop[:, 2:-2] == (255, 0, 0))  # the middle only
  assert crop[:, :, 1].max() < 64 and crop[:, :, 2].max() < 64  # (bicubic edges: a faint tint)
  stretch = image_folder.load_image(path, image_size=32, resize="stretch", channels=3)
  assert stretch.shape == (32, 32, 3)
  assert tuple(stretch[16, 2]) == (0, 255, 0) and tuple(stretch[16, 29]) == (0, 0, 255)
  pad = image_folder.load_image(path, image_size=32, resize="pad", channels=3)
  assert pad.shape == (32, 32, 3) and np.all(pad[:7] == 0) and np.all(pad[-7:] == 0)
  assert tuple(pad[16, 16]) == (255, 0, 0)
  gray = image_folder.load_image(path, image_size=8, resize="stretch", channels=1)
  assert gray.shape == (8, 8, 1)
  kept = image_folder.load_image(path, image_size=0, resize="none", channels=3)
  np.testing.assert_array_equal(kept, image)
  exif = Image.Exif()
  exif[0x0112] = 6  # EXIF orientation: "rotate 90 degrees clockwise to display"
  Image.fromarray(image).save(tmp_path / "rotated.png", exif=exif)
  upright = image_folder.load_image(str(tmp_path / "rotated.png"), image_size=0, resize="none",
                                    channels=3)
  np.testing.assert_array_equal(upright, np.rot90(image, k=-1))  # 80 x 40, green on top


def test_bad_folders_and_options_are_one_line_each(tmp_path):
  data_dir = str(tmp_path / "tfds")
  make_images(str(tmp_path / "mixed"), per_class=2, labelled=False)
  with pytest.raises(DataError, match=r"--resize none needs images of one size, but \d+ sizes occur "
                                      r"\(.*\); choose --resize"):
    image_folder.build(str(tmp_path / "mixed"), name="mixed", data_dir=data_dir, resize="none")
  with pytest.raises(ConfigError, match="--name 'cifar10' is a TFDS dataset's name"):
    image_folder.build(str(tmp_path / "mixed"), name="cifar10", data_dir=data_dir)
  with pytest.raises(ConfigError, match="--name 'My Photos': use lower_snake_case"):
    image_folder.build(str(tmp_path / "mixed"), name="My Photos", data_dir=data_dir)
  image_folder.build(str(tmp_path / "mixed"), name="mixed", data_dir=data_dir, image_size=8)
  with pytest.raises(DataError, match=rf"dataset 'mixed' already exists in {data_dir}/mixed/1.0.0; "
                                      r"pass --overwrite"):
    image_folder.build(str(tmp_path / "mixed"), name="mixed", data_dir=data_dir, image_size=8)
  rebuilt = image_folder.build(str(tmp_path / "mixed"), name="mixed", data_dir=data_dir,
                               image_size=12, overwrite=True)
  assert rebuilt.info.features["image"].shape == (12, 12, 3)
  assert pipeline.dataset_info("mixed", data_dir=data_dir).features["image"].shape == (12, 12, 3)
  with pytest.raises(ConfigError, match=r"dataset 'mixed' has no split 'test' \(it has \['train'\]\)"):
    pipeline.load_source("mixed", "test", data_dir=data_dir)
  with pytest.raises(ConfigError, match=rf"nor a dataset built by `python -m jax_ssl.prepare_data` "
                                        rf"in {data_dir}"):
    pipeline.load_source("no_such_images", "train", data_dir=data_dir)


def test_folder_without_a_readable_image_is_one_error_and_leaves_nothing(tmp_path):
  source = tmp_path / "junk"
  (source / "cats").mkdir(parents=True)
  (source / "cats" / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 100)  # JPEG start, then nothing
  (source / "cats" / "b.png").write_text("hello")
  proc = prepare_cli("--source", str(source), "--name", "junk", "--data_dir", str(tmp_path / "tfds"))
  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: no readable image for split 'train' in {source} (2 files, none readable: listed above)")
  lines = proc.stdout.splitlines()
  assert [line.split(":")[0] for line in lines if line.startswith("skipped ")] == [
      "skipped cats/a.jpg", "skipped cats/b.png"]
  assert "2 files skipped (listed above)" in lines
  assert not os.path.exists(tmp_path / "tfds" / "junk")
  empty = tmp_path / "empty"
  empty.mkdir()
  proc = prepare_cli("--source", str(empty), "--name", "empty", "--data_dir", str(tmp_path / "tfds"))
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: no image files in {empty}: put images in it (or in one subfolder per class)")


def test_damaged_image_dataset_names_the_command_that_rebuilds_it(tmp_path):
  source = make_images(str(tmp_path / "images"), per_class=4)
  data_dir = str(tmp_path / "tfds")
  image_folder.build(source, name="shapes", data_dir=data_dir, image_size=16, test_fraction=0.25)
  (train_file,) = glob.glob(f"{data_dir}/shapes/1.0.0/shapes-train.array_record-*")
  with open(train_file, "r+b") as f:
    f.truncate(100)
  with pytest.raises(DataError) as info:
    pipeline.load_source("shapes", "train", data_dir=data_dir)[0]
  command = (f"python -m jax_ssl.prepare_data image_folder --source {source} --name shapes "
             f"--data_dir {data_dir} --image_size 16 --resize shorter_side_center_crop --channels 3 "
             f"--test_fraction 0.25 --overwrite")
  assert str(info.value).startswith(
      f"dataset 'shapes' split 'train': record 0 (record 0 of {train_file}) is unreadable")
  assert str(info.value).endswith(f"the dataset files are damaged: rebuild them with `{command}`")
  proc = prepare_cli(*command.split()[4:])  # the command from the message, as given
  assert proc.returncode == 0, proc.stderr[-3000:]
  train_split = pipeline.load_source("shapes", "train", data_dir=data_dir)
  assert len(train_split) == 9 and train_split[8]["image"].shape == (16, 16, 3)


def _one_colour_folder(root, classes: dict[str, int]):
  """{class: count} of 20x20 PNGs (a flat colour per class) under root/<class>/."""
  for index, (name, count) in enumerate(classes.items()):
    os.makedirs(os.path.join(root, name), exist_ok=True)
    for i in range(count):
      Image.fromarray(np.full((20, 20, 3), 40 * index + i, np.uint8)).save(
          os.path.join(root, name, f"{i}.png"))
  return root


def test_prepare_data_is_quiet_takes_relative_paths_and_warns_about_degenerate_folders(tmp_path):
  _one_colour_folder(str(tmp_path / "one_image"), {"dogs": 1})
  proc = subprocess.run(
      [sys.executable, "-m", "jax_ssl.prepare_data", "image_folder", "--source", "one_image",
       "--name", "one_image", "--data_dir", "tfds", "--image_size", "16"],
      cwd=tmp_path, env={**os.environ, "PYTHONPATH": ts.ROOT}, capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  # Nothing but these lines: no TFDS "Downloading and preparing", progress bars or warnings.
  assert proc.stdout.splitlines() == [
      f"built 'one_image' in {tmp_path}/tfds/one_image/1.0.0: train 1 images of 16x16x3, "
      f"1 class (dogs)",
      "warning: 1 class (dogs): the evaluation needs at least 2 (add a folder per class), so "
      "train with --config.evaluate=False",
      "warning: no test split (--test_fraction holds out round(fraction x images) of each "
      "class: none here): the evaluation needs one (use more images, a larger --test_fraction, "
      "or train/ and test/ folders), so train with --config.evaluate=False",
      f"train on it with --config.dataset.name=one_image --config.dataset.data_dir={tmp_path}/tfds"]
  assert proc.stderr == ""


def test_trainer_refuses_unevaluable_folders_before_training(tmp_path):
  data_dir = str(tmp_path / "tfds")
  image_folder.build(_one_colour_folder(str(tmp_path / "one_class"), {"cats": 10}),
                     name="one_class", data_dir=data_dir, image_size=16)
  image_folder.build(_one_colour_folder(str(tmp_path / "no_test"), {"cats": 1, "dogs": 1}),
                     name="no_test", data_dir=data_dir, image_size=16)
  expected = {
      "one_class": "dataset 'one_class' has 1 class (cats): the evaluation needs at least 2 "
                   "(with one, every protocol scores 1.0); add a folder per class and rebuild "
                   "it, or pretrain only with --config.evaluate=False",
      "no_test": "dataset 'no_test' has no 'test' examples (its splits: train 2): the "
                 "evaluation needs a test split; rebuild it with more images per class (its "
                 "--test_fraction holds out round(fraction x images) of each class) or from "
                 "train/ and test/ folders, or pretrain only with --config.evaluate=False"}
  for name, message in expected.items():
    config = tiny_config("", data_dir, total_steps=1, evaluate=True, global_batch_size=8)
    config.dataset.name = name
    with pytest.raises(DataError) as info:
      train.train_and_evaluate(config, str(tmp_path / name))
    assert str(info.value) == message
    assert not os.path.exists(tmp_path / name / "checkpoints")  # before any step


def test_trainer_warns_in_one_line_where_a_small_dataset_still_runs(tmp_path, capsys):
  data_dir = str(tmp_path / "tfds")
  # 2 classes of 5 images, 1 of each held out: 8 training and 2 test images.
  image_folder.build(_one_colour_folder(str(tmp_path / "small"), {"cats": 5, "dogs": 5}),
                     name="small", data_dir=data_dir, image_size=28, test_fraction=0.2)
  config = tiny_config("", data_dir, total_steps=1, evaluate=True, global_batch_size=16)
  config.dataset.name = "small"
  config.eval.update(knn_k=200, knn_k_sweep=(1, 20), baselines=False, batch_size=8,
                     train_limit=0, test_limit=0, report=False, low_label_seeds=(0,))
  out = train.train_and_evaluate(config, str(tmp_path / "run"))
  lines = capsys.readouterr().out.splitlines()
  warnings = [line for line in lines if line.startswith("warning: ")]
  assert warnings == [
      "warning: dataset 'small' split 'train' has 8 examples, fewer than global_batch_size=16: "
      "every batch repeats them (2.0 copies each); lower --config.global_batch_size or add "
      "images",
      "warning: eval.knn_k=200 and k sweep (1, 20): 20, 200 above the 8 training examples "
      "evaluated; kNN uses k=8 for them",
      "warning: lowlabel-1% of 8 training examples is 1 example per class (2 in all): "
      "linear_1pct_top1 rests on one image per class"]
  assert lines.index(warnings[-1]) < min(i for i, line in enumerate(lines)
                                         if line.startswith("step 1/1"))  # before training
  assert out["results"]["knn_k"] == 8  # the k used
  assert out["results"]["eval_examples"] == {"train": [8, 8], "test": [2, 2]}


def test_encoded_mode_keeps_each_images_bytes_and_size_for_the_host_crops(tmp_path):
  """`--resize encoded`: every image at its own size, its file's bytes kept where the host
  path reads them as they are (a JPEG, a PNG), re-encoded upright where EXIF rotates it; the
  ImageNet experiments then crop each view from the whole image."""
  source = tmp_path / "images"
  rng = np.random.default_rng(0)
  for name in COLORS:
    os.makedirs(source / name)
    for i in range(4):
      image = rng.integers(0, 255, size=(40 + 8 * i, 70 - 6 * i, 3)).astype(np.uint8)
      Image.fromarray(image).save(source / name / f"{i}.{'jpg' if i % 2 else 'png'}", quality=90)
  wide = np.zeros((30, 60, 3), np.uint8)
  wide[:, :30] = 255  # white left half
  exif = Image.Exif()
  exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": upright it is 60 x 30
  Image.fromarray(wide).save(source / "circles" / "rotated.jpg", exif=exif, quality=95)
  data_dir = str(tmp_path / "tfds")
  proc = prepare_cli("--source", str(source), "--name", "my_photos", "--data_dir", data_dir,
                     "--resize", "encoded", "--test_fraction", "0.2")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert any("images of any size with 3 channels, 3 classes" in line
             for line in proc.stdout.splitlines()), proc.stdout
  info = pipeline.dataset_info("my_photos", data_dir=data_dir)
  assert pipeline.is_variable_size(info)
  train_split = pipeline.load_source("my_photos", "train", data_dir=data_dir, encoded=True)
  test_split = pipeline.load_source("my_photos", "test", data_dir=data_dir, encoded=True)
  stored = [r["image"] for split in (train_split, test_split)
            for r in (split[i] for i in range(len(split)))]
  assert len(stored) == 13 and all(isinstance(b, bytes) for b in stored)
  files = {p: open(p, "rb").read() for p in glob.glob(str(source / "*" / "[0-9].*"))}
  assert sum(b in files.values() for b in stored) == 12  # kept byte for byte
  (rotated,) = [b for b in stored if b not in files.values()]
  upright = np.asarray(Image.open(io.BytesIO(rotated)))
  assert upright.shape == (60, 30, 3)
  assert upright[:25].mean() > 200 and upright[35:].mean() < 50  # white half now on top
  # The evaluation reads decoded images at the config's size (shorter side, centre crop).
  decoded = pipeline.load_source("my_photos", "test", data_dir=data_dir)
  assert pipeline._image_and_label(decoded[0], 64)["image"].shape == (64, 64, 3)

  from jax_ssl.config import load  # pylint: disable=g-import-not-at-top
  config = load.load_experiment(os.path.join(ts.ROOT, "experiments/imagenet/simclr_resnet50.py:runlocal"))
  config.update_from_flattened_dict({"model.width": 4, "total_steps": 2, "evaluate": False,
                                     "dataset.name": "my_photos", "dataset.data_dir": data_dir,
                                     "dataset.test_split": "test"})
  out = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert out["step"] == 2

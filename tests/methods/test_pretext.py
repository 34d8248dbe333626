"""Classic pretext tasks: tiles, permutation sets, rotations and neighbours are exactly what
they claim, and each task's accuracy rises during a short run of a tiny model."""

import dataclasses
import json
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from conftest import tiny_config
from jax_ssl import train
from jax_ssl.errors import ConfigError
from jax_ssl.methods import jigsaw, relative_position, rotation, tiles


def ramp_images(batch=3, size=28, channels=1):
  """Images whose every pixel value is unique (so a tile is identified by its values)."""
  values = np.arange(batch * size * size * channels, dtype=np.float32)
  return jnp.asarray(values.reshape(batch, size, size, channels))


def test_grid_tiles_without_gap_or_jitter_partition_the_image():
  images = ramp_images(size=27)
  cut = tiles.grid_tiles(jax.random.key(0), images, grid=3, gap=0, jitter=0)
  assert cut.shape == (3, 9, 9, 9, 1)
  for cell in range(9):
    r, c = divmod(cell, 3)
    np.testing.assert_array_equal(cut[:, cell], images[:, 9 * r:9 * r + 9, 9 * c:9 * c + 9])


def test_grid_tiles_stay_in_their_cell_keep_the_gap_and_jitter():
  images = ramp_images(batch=64)
  gap, jitter = 2, 2
  size = tiles.tile_size(28, 3, gap, jitter)
  assert size == 5
  cut = np.asarray(tiles.grid_tiles(jax.random.key(1), images, grid=3, gap=gap, jitter=jitter))
  starts = set()
  for b in range(64):
    for cell in range(9):
      r, c = divmod(cell, 3)
      first = cut[b, cell, 0, 0, 0] - b * 28 * 28  # value = row * 28 + col in example b
      y, x = divmod(int(first), 28)
      dy, dx = y - 9 * r - gap // 2, x - 9 * c - gap // 2
      assert 0 <= dy <= jitter and 0 <= dx <= jitter, (b, cell, dy, dx)
      np.testing.assert_array_equal(cut[b, cell], images[b, y:y + size, x:x + size])
      starts.add((dy, dx))
  assert len(starts) == (jitter + 1) ** 2  # every shift occurs
  # Horizontal neighbours: right tile's first column minus left tile's last column > gap.
  lefts = cut[:, 0, 0, -1, 0] % 28
  rights = cut[:, 1, 0, 0, 0] % 28
  assert np.all(rights - lefts > gap)


def test_normalize_tiles():
  tile = np.random.default_rng(0).uniform(0, 5, size=(2, 4, 7, 7, 1)).astype(np.float32)
  out = np.asarray(tiles.normalize_tiles(tile))
  np.testing.assert_allclose(out.mean(axis=(2, 3)), 0.0, atol=1e-5)
  np.testing.assert_allclose(out.std(axis=(2, 3)), 1.0, rtol=1e-3)


def test_normalize_tiles_to_the_images_statistics():
  rng = np.random.default_rng(1)
  tile = rng.uniform(0, 5, size=(2, 4, 7, 7, 3)).astype(np.float32)
  images = rng.uniform(size=(2, 28, 28, 3)).astype(np.float32) * [0.5, 1.0, 2.0] + [0, 1, 3]
  out = np.asarray(tiles.normalize_tiles(tile, statistics="images", images=images))
  # Every tile and channel: the pixel mean and std of that channel over the whole batch.
  np.testing.assert_allclose(out.mean(axis=(2, 3)), np.broadcast_to(
      images.mean(axis=(0, 1, 2)), (2, 4, 3)), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(out.std(axis=(2, 3)), np.broadcast_to(
      images.std(axis=(0, 1, 2)), (2, 4, 3)), rtol=1e-3)
  # The unit-normalised tile, affinely mapped: the arrangement of pixels is unchanged.
  unit = np.asarray(tiles.normalize_tiles(tile))
  np.testing.assert_allclose(out, unit * images.std(axis=(0, 1, 2)) + images.mean(axis=(0, 1, 2)),
                             rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="tile_statistics='image'; use one of") as info:
    tiles.normalize_tiles(tile, statistics="image", images=images)
  assert "\n" not in str(info.value)


def test_permutation_set_is_a_deterministic_maximal_hamming_set():
  perms = tiles.permutation_set(30, 9, 0)
  assert perms.shape == (30, 9) and perms.dtype == np.int32
  assert all(sorted(p) == list(range(9)) for p in perms)
  assert len({tuple(p) for p in perms}) == 30
  distances = (perms[:, None] != perms[None]).sum(-1)[~np.eye(30, dtype=bool)]
  # Greedy max-min selection keeps every pair far apart (random sets of 30 permutations of
  # 9 typically have pairs at distance 3-5).
  assert distances.min() >= 7
  np.testing.assert_array_equal(perms, tiles.permutation_set(30, 9, 0))
  assert not np.array_equal(perms[0], tiles.permutation_set(30, 9, 1)[0])
  with pytest.raises(ValueError, match="24 permutations"):
    tiles.permutation_set(25, 4, 0)


def test_rotate_all_labels_match_rot90():
  images = ramp_images(batch=2)
  rotated, labels = rotation.rotate_all(images)
  assert rotated.shape == (8, 28, 28, 1)
  np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2, 3, 3])
  for row in range(8):
    k, b = divmod(row, 2)
    np.testing.assert_array_equal(rotated[row, ..., 0], np.rot90(np.asarray(images[b, ..., 0]), k))


def test_jigsaw_shuffle_is_undone_by_its_permutation():
  images = ramp_images(batch=16)
  perms = jnp.asarray(tiles.permutation_set(10, 9, 0))
  shuffled, labels = jigsaw.shuffle_tiles(jax.random.key(2), images, perms, grid=3, gap=1,
                                          jitter=1)
  assert shuffled.shape == (16, 9, 7, 7, 1) and len(set(np.asarray(labels).tolist())) > 3
  # The same key gives the same unshuffled tiles: put each shuffled tile back where it
  # came from and compare with the grid (normalised the same way).
  tile_rng, _ = jax.random.split(jax.random.key(2))
  grid = tiles.normalize_tiles(tiles.grid_tiles(tile_rng, images, grid=3, gap=1, jitter=1))
  for b in range(16):
    order = np.asarray(perms[labels[b]])
    for position in range(9):
      np.testing.assert_array_equal(shuffled[b, position], grid[b, order[position]])


def test_jigsaw_image_layout_puts_the_shuffled_tiles_in_the_cells():
  """layout="image" (JiGen): cell j of the scrambled image holds source tile perm[j]; with
  no gap or jitter the tiles fill their cells exactly and assembling undoes the cut."""
  images = ramp_images(batch=8)
  whole = tiles.grid_tiles(jax.random.key(0), images, grid=2, gap=0, jitter=0)
  np.testing.assert_array_equal(tiles.assemble_tiles(whole, grid=2, height=28, width=28),
                                images)
  perms = jnp.asarray(tiles.permutation_set(24, 4, 0))
  scrambled, labels = jigsaw.scrambled_images(jax.random.key(2), images, perms, grid=2, gap=0,
                                              jitter=0, tile_statistics="images")
  assert scrambled.shape == images.shape and len(set(np.asarray(labels).tolist())) > 3
  grid = tiles.normalize_tiles(whole, statistics="images", images=images)
  for b in range(8):
    order = np.asarray(perms[labels[b]])
    for position in range(4):
      row, col = divmod(position, 2)
      np.testing.assert_allclose(scrambled[b, 14 * row:14 * row + 14, 14 * col:14 * col + 14],
                                 grid[b, order[position]], atol=1e-6)
  # With a gap the 12-px tiles are resized to the 14-px cells; 3x3 cells (27 px) are resized
  # to the input's 28.
  gapped, _ = jigsaw.scrambled_images(jax.random.key(2), images, perms, grid=2, gap=1, jitter=1)
  three, _ = jigsaw.scrambled_images(jax.random.key(2), images,
                                     jnp.asarray(tiles.permutation_set(5, 9, 0)), grid=3,
                                     gap=1, jitter=1)
  assert gapped.shape == three.shape == images.shape
  with pytest.raises(ConfigError, match="layout='image'.*set tile_resize=0"):
    jigsaw.Args(layout="image", tile_resize=28).validate()
  with pytest.raises(ConfigError, match="method_args.layout='tile'; use one of"):
    jigsaw.Args(layout="tile").validate()
  with pytest.raises(ConfigError, match="unshuffled_fraction=1.0; use a fraction in"):
    jigsaw.Args(layout="image", unshuffled_fraction=1.0).validate()


def test_jigsaw_unshuffled_fraction_leaves_examples_in_order():
  """JiGen's ordered images: about that fraction of the examples keep the identity order and
  its label; the identity becomes one more class when the set lacks it."""
  single = jigsaw.puzzle_permutations(1, 9, 0, 0.0)  # one random permutation, not the identity
  assert single.shape == (1, 9) and not (single == np.arange(9)).all()
  with_order = jigsaw.puzzle_permutations(1, 9, 0, 0.3)
  np.testing.assert_array_equal(with_order, [single[0], np.arange(9)])
  assert jigsaw.identity_index(with_order) == 1
  # The maximal-Hamming set takes the identity early (lexicographically first): kept as is.
  perms = jigsaw.puzzle_permutations(10, 9, 0, 0.3)
  np.testing.assert_array_equal(perms, tiles.permutation_set(10, 9, 0))
  identity = jigsaw.identity_index(perms)
  images = ramp_images(batch=512)
  shuffled, labels = jigsaw.shuffle_tiles(jax.random.key(5), images, perms, grid=3, gap=1,
                                          jitter=1, unshuffled_fraction=0.3)
  labels = np.asarray(labels)
  ordered = labels == identity
  # 0.3 kept in order plus 0.7 / 10 drawn as the identity: 0.37 expected.
  assert 0.30 < ordered.mean() < 0.44, ordered.mean()
  assert set(labels[~ordered].tolist()) == set(range(10)) - {identity}
  tile_rng, _ = jax.random.split(jax.random.key(5))
  grid = tiles.normalize_tiles(tiles.grid_tiles(tile_rng, images, grid=3, gap=1, jitter=1))
  np.testing.assert_array_equal(shuffled[ordered], grid[ordered])
  assert not np.allclose(shuffled[~ordered], grid[~ordered])
  _, never = jigsaw.shuffle_tiles(jax.random.key(5), images, perms, grid=3, gap=1, jitter=1)
  # The classifier has a class for the identity when the set lacks it.
  args = jigsaw.Args(num_permutations=1, unshuffled_fraction=0.3)
  heads = jigsaw.SPEC.make_heads(4, jigsaw.Heads(classifier_hidden_dim=8,
                                                 classifier_num_layers=2), args, nnx.Rngs(0))
  assert heads["classifier"](jnp.ones((3, 9 * 4))).shape == (3, 2)
  assert 0 < np.mean(np.asarray(never) == identity) < 0.2
  with pytest.raises(ValueError, match="no identity permutation"):
    jigsaw.shuffle_tiles(jax.random.key(5), images, single, grid=3, gap=1, jitter=1,
                         unshuffled_fraction=0.5)


def test_relative_position_neighbour_is_at_its_label():
  images = ramp_images(batch=32)
  centre, neighbour, labels = relative_position.tile_and_neighbour(
      jax.random.key(3), images, gap=1, jitter=1)
  assert set(np.asarray(labels).tolist()) == set(range(8))
  tile_rng, _ = jax.random.split(jax.random.key(3))
  grid = tiles.normalize_tiles(tiles.grid_tiles(tile_rng, images, grid=3, gap=1, jitter=1))
  for b in range(32):
    np.testing.assert_array_equal(centre[b], grid[b, 4])
    np.testing.assert_array_equal(neighbour[b], grid[b, relative_position.NEIGHBOURS[labels[b]]])


def test_relative_position_all_neighbours_pairs_each_with_its_label():
  images = ramp_images(batch=6)
  grid, labels = relative_position.centre_and_all_neighbours(jax.random.key(3), images,
                                                             gap=1, jitter=1)
  centre, neighbour, drawn = relative_position.tile_and_neighbour(jax.random.key(3), images,
                                                                    gap=1, jitter=1)
  np.testing.assert_array_equal(labels, np.arange(8))
  np.testing.assert_array_equal(grid[:, 4], centre)  # same grid as the one-neighbour draw
  for b in range(6):
    np.testing.assert_array_equal(grid[b, relative_position.NEIGHBOURS[drawn[b]]], neighbour[b])
  # The objective pairs the centre with neighbour k under label k, for every image.
  seen = []

  class Recorder(nnx.Module):
    def __call__(self, pair):
      seen.append(pair)
      return jnp.zeros((pair.shape[0], 8))

  backbone = lambda x: x.reshape(x.shape[0], -1)  # noqa: E731  (features = the tile's pixels)
  model = SimpleNamespace(backbone=backbone, heads={"classifier": Recorder()})
  context = SimpleNamespace(rng=jax.random.key(3))
  args = relative_position.Args(gap=1, jitter=1, tile_resize=0, tile_statistics="unit",
                                grid=3, neighbours="all")
  loss, metrics, _ = relative_position.objective(model, [images], None, context, args)
  pair = seen[0].reshape(6, 8, 2, -1)
  for k, cell in enumerate(relative_position.NEIGHBOURS):
    np.testing.assert_array_equal(pair[:, k, 0], grid[:, 4].reshape(6, -1))
    np.testing.assert_array_equal(pair[:, k, 1], grid[:, cell].reshape(6, -1))
  np.testing.assert_allclose(loss, np.log(8), rtol=1e-6)  # uniform logits over 8 classes
  with pytest.raises(ConfigError, match="neighbours='both'; use one of"):
    relative_position.Args(neighbours="both", grid=3).validate()


def test_relative_position_pairs_of_a_2x2_grid():
  np.testing.assert_array_equal(relative_position.neighbour_pairs(3),
                                [(4, cell, k) for k, cell in enumerate(relative_position.NEIGHBOURS)])
  pairs = relative_position.neighbour_pairs(2)
  # Cells 0 1 / 2 3; labels: 0 up-left, 1 up, 2 up-right, 3 left, 4 right, 5 down-left,
  # 6 down, 7 down-right.
  assert sorted(map(tuple, pairs.tolist())) == sorted([
      (0, 1, 4), (0, 2, 6), (0, 3, 7), (1, 0, 3), (1, 2, 5), (1, 3, 6),
      (2, 0, 1), (2, 1, 2), (2, 3, 4), (3, 0, 0), (3, 1, 1), (3, 2, 3)])
  images = ramp_images(batch=64)
  first, neighbour, labels = relative_position.tile_and_neighbour(
      jax.random.key(4), images, gap=1, jitter=1, grid=2)
  assert first.shape == (64, 12, 12, 1)  # 14-px cells less gap and jitter
  tile_rng, label_rng = jax.random.split(jax.random.key(4))
  grid = tiles.normalize_tiles(tiles.grid_tiles(tile_rng, images, grid=2, gap=1, jitter=1))
  drawn = pairs[np.asarray(jax.random.randint(label_rng, (64,), 0, 12))]
  np.testing.assert_array_equal(labels, drawn[:, 2])
  for b in range(64):
    np.testing.assert_array_equal(first[b], grid[b, drawn[b, 0]])
    np.testing.assert_array_equal(neighbour[b], grid[b, drawn[b, 1]])
  assert len(set(map(tuple, drawn[:, :2].tolist()))) == 12  # every pair gets drawn
  with pytest.raises(ConfigError, match="method_args.grid=4; use one of"):
    relative_position.Args(neighbours="one", grid=4).validate()
  with pytest.raises(ConfigError, match="set method_args.grid=3 or method_args.neighbours='one'"):
    relative_position.Args(neighbours="all", grid=2).validate()


PRETEXT = {  # case: (method_args, steps); relative_position steps are ~10x cheaper
    "rotation": ({}, 60),
    "jigsaw": ({"grid": 3, "gap": 1, "jitter": 1, "num_permutations": 8, "permutation_seed": 0},
               60),
    "jigsaw-image": ({"grid": 2, "gap": 1, "jitter": 1, "num_permutations": 8,
                      "permutation_seed": 0, "layout": "image", "tile_statistics": "images"},
                     60),
    "relative_position": ({"gap": 1, "jitter": 1, "tile_statistics": "images"}, 300),
    "relative_position-all": ({"gap": 1, "jitter": 1, "tile_statistics": "images",
                               "neighbours": "all"}, 100),
    "relative_position-grid2": ({"gap": 1, "jitter": 1, "tile_statistics": "images",
                                 "grid": 2}, 300),
}


@pytest.mark.parametrize("case", sorted(PRETEXT))
def test_pretext_accuracy_rises_during_training(case, fake_fmnist, tmp_path):
  method = case.split("-")[0]
  method_args, steps = PRETEXT[case]
  config = tiny_config(*fake_fmnist, total_steps=steps, checkpoint_every_steps=1000)
  config.method = method
  config.method_args = ml_collections.ConfigDict(method_args)
  config.heads = ml_collections.ConfigDict(dict(classifier_hidden_dim=32,
                                                classifier_num_layers=2))
  config.model.width = 8
  config.optimizer.base_learning_rate = 3e-2  # peak 3.75e-3 at batch 32
  config.augment.crop_scale = (0.8, 1.0)
  train.train_and_evaluate(config, str(tmp_path))
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  accuracy = np.array([r[f"{method}_accuracy"] for r in records])
  chance = 1 / {"rotation": 4, "jigsaw": 8, "relative_position": 8}[method]
  assert len(accuracy) == steps and all(r[method] == r["loss"] for r in records)
  assert accuracy[:5].mean() < chance + 0.15
  assert accuracy[-20:].mean() > chance + 0.15, accuracy


def test_tiles_resized_to_the_evaluation_resolution():
  images = ramp_images(batch=4)
  centre, neighbour, labels = relative_position.tile_and_neighbour(
      jax.random.key(3), images, gap=1, jitter=1, tile_resize=28)
  assert centre.shape == neighbour.shape == (4, 28, 28, 1)
  tile_rng, _ = jax.random.split(jax.random.key(3))
  grid = tiles.normalize_tiles(tiles.grid_tiles(tile_rng, images, grid=3, gap=1, jitter=1))
  expected = jax.image.resize(grid[:, 4], (4, 28, 28, 1), "bilinear")
  np.testing.assert_allclose(centre, expected, rtol=1e-6, atol=1e-6)
  # Bilinear upsampling of a ramp keeps its range: the corners are the tile's corners.
  np.testing.assert_allclose(centre[:, 0, 0], grid[:, 4, 0, 0], atol=0.15)
  perms = jnp.asarray(tiles.permutation_set(10, 9, 0))
  shuffled, _ = jigsaw.shuffle_tiles(jax.random.key(2), images, perms, grid=3, gap=1, jitter=1,
                                     tile_resize=14)
  assert shuffled.shape == (4, 9, 14, 14, 1)
  assert tiles.resize_tiles(grid, 0) is grid and tiles.resize_tiles(grid, 7) is grid


def test_relative_position_leaves_blank_tiles_out_of_the_loss():
  """min_tile_std: pairs with a tile of one colour carry no weight in the loss or accuracy."""
  images = np.zeros((16, 28, 28, 1), np.float32)
  images[:, :, 10:18] = np.random.default_rng(0).uniform(size=(16, 28, 8, 1))  # middle column
  images = jnp.asarray(images)
  backbone = lambda x: x.reshape(x.shape[0], -1)[:, :40]  # noqa: E731
  model = SimpleNamespace(backbone=backbone,
                          heads={"classifier": lambda pair: pair[:, :8] * 3.0})
  context = SimpleNamespace(rng=jax.random.key(4))
  args = relative_position.Args(gap=1, jitter=1, tile_resize=0, tile_statistics="unit",
                                grid=3, neighbours="one")
  loss_all, metrics_all, _ = relative_position.objective(model, [images], None, context, args)
  loss, metrics, _ = relative_position.objective(
      model, [images], None, context, dataclasses.replace(args, min_tile_std=0.5))
  first, neighbour, labels = relative_position.tile_and_neighbour(
      context.rng, images, gap=1, jitter=1, grid=3)
  column = np.asarray(relative_position.neighbour_pairs(3))[:, 1][np.asarray(labels)] % 3
  kept = column == 1  # neighbours above or below the centre: the middle column has content
  assert 0 < kept.sum() < len(kept)
  logits = jnp.concatenate([first.reshape(16, -1)[:, :40], neighbour.reshape(16, -1)[:, :40]],
                           -1)[:, :8] * 3.0
  per_pair = np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
  np.testing.assert_allclose(loss, per_pair[kept].mean(), rtol=1e-5)
  np.testing.assert_allclose(loss_all, per_pair.mean(), rtol=1e-5)
  assert metrics["relative_position_informative"] == pytest.approx(kept.mean())
  assert "relative_position_informative" not in metrics_all
  with pytest.raises(ConfigError, match="min_tile_std applies to neighbours='one' only"):
    relative_position.Args(neighbours="all", grid=3, min_tile_std=0.5).validate()

"""The typed arguments of the pretext and masked-modelling methods (rotation, jigsaw,
relative position, MAE, SimMIM, MaskFeat, the VQ tokenizer, BEiT): each `Args` / `Heads`
refuses an impossible value in one line naming the key, the value and what is allowed, and a
misspelt key in a config is refused by the trainer's config check naming the closest key."""

import pytest

from conftest import tiny_config
from jax_ssl import config as config_lib
from jax_ssl import methods
from jax_ssl.config import typed
from jax_ssl.errors import ConfigError

# (method, section, {key: bad value}, the whole one-line message)
BAD_VALUES = [
    ("rotation", "heads", {"classifier_num_layers": 0},
     "heads.classifier_num_layers=0; must be >= 1 (1: a linear classifier)"),
    ("jigsaw", "method_args", {"grid": 4}, "method_args.grid=4; use one of (2, 3)"),
    ("jigsaw", "method_args", {"grid": 2, "num_permutations": 30},
     "method_args.num_permutations=30; a 2x2 grid has 24 permutations, use 1 to 24"),
    ("jigsaw", "method_args", {"tile_statistics": "batch"},
     "method_args.tile_statistics='batch'; use one of ('unit', 'images')"),
    ("jigsaw", "heads", {"classifier_hidden_dim": 0},
     "heads.classifier_hidden_dim=0; must be > 0"),
    ("relative_position", "method_args", {"jitter": -1}, "method_args.jitter=-1; must be >= 0"),
    ("relative_position", "method_args", {"neighbours": "all", "grid": 2},
     "method_args.neighbours='all' needs the 3x3 grid's centre; set method_args.grid=3 or "
     "method_args.neighbours='one'"),
    ("mae", "method_args", {"mask_ratio": 1.0},
     "method_args.mask_ratio=1.0; must be in [0, 1) (the fraction of the patches masked)"),
    ("mae", "heads", {"decoder_dim": 30, "decoder_num_heads": 4},
     "heads.decoder_dim=30 is not divisible by heads.decoder_num_heads=4; set them so that it "
     "is"),
    ("simmim", "method_args", {"mask_strategy": "grid"},
     "method_args.mask_strategy='grid'; use one of ('random', 'block')"),
    ("simmim", "method_args", {"mask_unit": 0},
     "method_args.mask_unit=0; must be >= 1 (1 masks single patches)"),
    ("maskfeat", "method_args", {"normalization": "block"},
     "method_args.normalization='block'; use one of ('cell', 'patch') (each cell's histogram, "
     "as the official code, or each patch's)"),
    ("maskfeat", "method_args", {"min_block_patches": 0},
     "method_args.min_block_patches=0; must be >= 1"),
    ("vq_tokenizer", "method_args", {"commitment_weight": -0.5},
     "method_args.commitment_weight=-0.5; must be >= 0"),
    ("vq_tokenizer", "heads", {"num_codes": 0}, "heads.num_codes=0; must be > 0"),
    ("beit", "method_args", {"mask_ratio": -0.1},
     "method_args.mask_ratio=-0.1; must be in [0, 1) (the fraction of the patches masked)"),
    ("beit", "method_args", {"tokenizer_workdir": 3},
     "method_args.tokenizer_workdir=3 has type int; expected str"),
]


@pytest.mark.parametrize("method, section, values, message", BAD_VALUES,
                         ids=[f"{m}-{','.join(v)}" for m, _, v, _ in BAD_VALUES])
def test_args_and_heads_refuse_impossible_values_in_one_line(method, section, values, message):
  spec = methods.get_method(method)
  kind = spec.args_type if section == "method_args" else spec.heads_type
  typed.from_mapping(kind, {}, f"{section}.")  # the defaults are valid
  with pytest.raises(ConfigError) as info:
    typed.from_mapping(kind, values, f"{section}.")
  assert str(info.value) == message


# (method, section, misspelt key, the key it should have been)
MISSPELT = [
    ("rotation", "heads", "classifier_hidden", "classifier_hidden_dim"),
    ("jigsaw", "method_args", "num_permutation", "num_permutations"),
    ("relative_position", "method_args", "neighbors", "neighbours"),
    ("mae", "heads", "decoder_dimm", "decoder_dim"),
    ("simmim", "method_args", "mask_units", "mask_unit"),
    ("maskfeat", "method_args", "orientation", "orientations"),
    ("vq_tokenizer", "heads", "num_code", "num_codes"),
    ("beit", "method_args", "tokenizer_dir", "tokenizer_workdir"),
]


@pytest.mark.parametrize("method, section, key, closest", MISSPELT,
                         ids=[f"{m}-{k}" for m, _, k, _ in MISSPELT])
def test_a_misspelt_key_is_refused_naming_the_closest(method, section, key, closest):
  """Through `Experiment.from_config` and `config.validate`, the trainer's first calls
  (in-process, no data, no training); before the typed Args a misspelt head key passed
  silently."""
  config = tiny_config("unused", "unused")
  config.method = method
  config.method_args, config.heads = {}, {}
  config[section][key] = 1
  with pytest.raises(ConfigError) as info:
    config_lib.validate(config_lib.Experiment.from_config(config), device_count=1)
  assert str(info.value) == (f"config key '{section}.{key}' is unknown; did you mean "
                             f"'{section}.{closest}'?")


def test_simmim_mask_units_must_tile_the_token_grid_when_the_heads_are_made():
  """A check that needs the ViT's token grid: one line from the build step, not at the first
  step's trace."""
  config = tiny_config("unused", "unused")
  config.method = "simmim"
  config.method_args = {"mask_unit": 2}
  config.heads = {}
  config.model.update(dict(backbone="vit_tiny", patch_size=4, depth=1, dim=16, num_heads=2))
  with pytest.raises(ConfigError) as info:
    config_lib.build_model(config_lib.Experiment.from_config(config), 1, 0)
  assert str(info.value) == ("method_args.mask_unit=2 does not divide the 7x7 token grid; use a "
                             "divisor (1 masks single patches)")

"""Checks of a method's arguments that need the model, made by the build step in one line
(not at the first step's trace). The checks of the Args and Heads alone: test_args.py."""

import pytest

from conftest import tiny_config
from jax_ssl import config as config_lib
from jax_ssl.errors import ConfigError

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

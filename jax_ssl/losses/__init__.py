"""Standalone pure loss functions: arrays in, scalar out, no config, no globals.

Each function is differentiable and jit-able. Called on global (sharded) arrays under
`jax.jit`, every reduction runs over the global batch.

Grouped by family in submodules; everything public is re-exported here, so
`jax_ssl.losses.<name>` is the one import path.
"""

from jax_ssl.losses.clustering import dino, dino_center_update, sinkhorn_knopp, swav
from jax_ssl.losses.contrastive import (info_nce, l2_normalize, moco_v2, nearest_neighbour, nnclr,
                                        nt_xent, nt_xent_multi_view)
from jax_ssl.losses.mim_targets import beit, maskfeat, perplexity, vq_vae
from jax_ssl.losses.masked import mae, normalized_patches, simmim
from jax_ssl.losses.non_contrastive import (barlow_twins, byol, lejepa, random_directions, sigreg,
                                            simsiam, tico, tico_covariance_update, vicreg)

__all__ = ["barlow_twins", "beit", "byol", "dino", "dino_center_update", "info_nce",
           "l2_normalize", "lejepa", "mae", "maskfeat", "moco_v2", "nearest_neighbour", "nnclr",
           "normalized_patches", "nt_xent", "nt_xent_multi_view", "perplexity",
           "random_directions", "sigreg", "simmim", "simsiam", "sinkhorn_knopp", "swav", "tico",
           "tico_covariance_update", "vicreg", "vq_vae"]

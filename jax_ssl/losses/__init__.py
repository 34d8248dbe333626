"""Standalone pure loss functions: arrays in, scalar out, no config, no globals.

Each function is differentiable and jit-able. Called on global (sharded) arrays under
`jax.jit`, every reduction runs over the global batch.

Grouped by family in submodules; everything public is re-exported here, so
`jax_ssl.losses.<name>` is the one import path.
"""

from jax_ssl.losses.clustering import dino, dino_center_update, sinkhorn_knopp, swav
from jax_ssl.losses.contrastive import (info_nce, l2_normalize, moco_v2, nearest_neighbour, nnclr,
                                        nt_xent, nt_xent_multi_view)
from jax_ssl.losses.data2vec import data2vec, data2vec_targets, mean_feature_std
from jax_ssl.losses.distillation import (centered_teacher_probs, cross_view_cross_entropy,
                                         ibot_patch, koleo, patch_center_update,
                                         sinkhorn_teacher_probs)
from jax_ssl.losses.latent import cnn_jepa, feature_layer_norm, ijepa, nepa, smooth_l1
from jax_ssl.losses.masked import mae, normalized_patches, simmim
from jax_ssl.losses.mim_targets import beit, maskfeat, perplexity, vq_vae
from jax_ssl.losses.non_contrastive import (barlow_twins, byol, lejepa, random_directions, sigreg,
                                            simsiam, tico, tico_covariance_update, vicreg)
from jax_ssl.losses.video import (cvrl, rho_byol, rho_moco, rspnet_appearance,
                                  rspnet_speed_ranking, speed_ranking_accuracy)
from jax_ssl.losses.video_pretext import pretext_cross_entropy, temporal_pretext

__all__ = [
    "barlow_twins", "beit", "byol", "centered_teacher_probs", "cnn_jepa",
    "cross_view_cross_entropy", "data2vec", "data2vec_targets", "dino", "dino_center_update",
    "feature_layer_norm", "ibot_patch", "ijepa", "info_nce", "koleo", "l2_normalize", "lejepa",
    "mae", "maskfeat", "mean_feature_std", "moco_v2", "nearest_neighbour", "nepa", "nnclr",
    "normalized_patches", "nt_xent", "nt_xent_multi_view", "patch_center_update", "perplexity",
    "pretext_cross_entropy", "temporal_pretext",
    "cvrl", "rho_byol", "rho_moco", "rspnet_appearance", "rspnet_speed_ranking",
    "speed_ranking_accuracy",
    "random_directions", "sigreg", "simmim", "simsiam", "sinkhorn_knopp",
    "sinkhorn_teacher_probs", "smooth_l1", "swav", "tico", "tico_covariance_update", "vicreg",
    "vq_vae",
]

"""SimCLR: NT-Xent over the global batch of two views.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
ICML 2020. Under `jax.jit` over global arrays the similarity matrix spans every device's
and every host's examples, so each anchor has 2N-1 global negatives.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax

from jax_ssl import losses
from jax_ssl.methods.spec import (MethodSpec, SSLModel, StepContext, embed_views,
                                  projector_heads)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, *,
              temperature: float):
  z1, z2 = embed_views(model, views)
  loss = losses.nt_xent(z1, z2, temperature)
  return loss, {"nt_xent": loss}, {}


SPEC = MethodSpec(
    name="simclr",
    num_views=2,
    make_heads=projector_heads,
    objective=objective,
    default_method_args={"temperature": 0.2},
)

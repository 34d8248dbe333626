"""CVRL: its defaults are the reference's (temperature 0.1, a 3-hidden-layer 2048 -> 128
projector) and its loss is twice SimCLR's NT-Xent. (Its train step on clips is SimCLR's
`embed_projections` path, whose 1-vs-8-device test is SimCLR's; a real clip step on 1 vs 8
devices costs ~15 s of compile per device count on 2 cores, so the one video device test is
RSPNet's, tests/methods/test_rspnet.py, which also covers a queue and an EMA.)"""

import numpy as np
import pytest

from jax_ssl import losses
from jax_ssl.errors import ConfigError
from jax_ssl.methods import cvrl


def test_defaults_and_loss_are_cvrls():
  # tensorflow/models official/projects/video_ssl/configs/video_ssl.py: temperature 0.1,
  # hidden_layer_num=3 of hidden_dim=2048, projection_dim=128 (4 linear layers).
  assert cvrl.Args().temperature == 0.1
  heads = cvrl.Heads()
  assert (heads.projector_num_layers, heads.projector_hidden_dim,
          heads.projector_output_dim) == (4, 2048, 128)
  rng = np.random.default_rng(0)
  z1, z2 = (rng.normal(size=(8, 6)).astype(np.float32) for _ in range(2))
  loss, metrics, state_inputs = cvrl.embedding_loss([z1, z2], {}, None, cvrl.Args(0.5))
  assert float(loss) == pytest.approx(2 * float(losses.nt_xent(z1, z2, 0.5)), rel=1e-6)
  assert metrics["cvrl"] == loss and state_inputs == {}
  with pytest.raises(ConfigError, match=r"method_args.temperature=0.0; must be > 0"):
    cvrl.Args(temperature=0.0).validate()


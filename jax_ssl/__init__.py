"""jax_ssl: self-supervised learning in JAX / Flax NNX.

Entry points: `python -m jax_ssl.train`, `python -m jax_ssl.evaluate`. Library pieces:
`jax_ssl.losses` (pure losses), `jax_ssl.methods` (method specs), `jax_ssl.models`,
`jax_ssl.data`, `jax_ssl.step` (the generic pure train step).
"""

from jax_ssl import host_memory as _host_memory
from jax_ssl import xla_flags as _xla_flags

# Both before any JAX computation creates the CPU client.
_host_memory.apply_defaults()
_xla_flags.apply_defaults()

__version__ = "0.1.0"

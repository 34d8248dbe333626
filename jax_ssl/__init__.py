"""jax_ssl: self-supervised learning in JAX / Flax NNX.

Entry points: `python -m jax_ssl.train`, `python -m jax_ssl.evaluate`, `python -m
jax_ssl.export`. Library pieces:
`jax_ssl.losses` (pure losses), `jax_ssl.methods` (method specs), `jax_ssl.models`,
`jax_ssl.data`, `jax_ssl.step` (the generic pure train step), `jax_ssl.backends` (the
models' speed backends). `jax_ssl.load_backbone(PATH)` reads a backbone written by `python
-m jax_ssl.export` (jax_ssl/backbone.py), imported on first use so that `import jax_ssl`
stays light.

Importing it changes no process state: the CPU platform's malloc setting and XLA flag are
applied by the entry points (`jax_ssl.backends.prepare_process`, docs/backends.md).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
  """Lazy attributes (PEP 562): `load_backbone` imports the models only when asked for."""
  if name == "load_backbone":
    from jax_ssl.backbone import load_backbone  # pylint: disable=g-import-not-at-top
    return load_backbone
  raise AttributeError(f"module 'jax_ssl' has no attribute {name!r}")

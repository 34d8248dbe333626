"""Fashion-MNIST as a TFDS dataset built offline from IDX files (Debian's dataset-fashion-mnist)."""
from jax_ssl.data.fashion_mnist_local.builder import Builder, DEFAULT_SOURCE_DIR

__all__ = ["Builder", "DEFAULT_SOURCE_DIR"]

"""Moving Fashion-MNIST: an offline TFDS video dataset of bouncing Fashion-MNIST garments."""
from jax_ssl.data.moving_fashion_mnist.builder import (Builder, MOTION_NAMES, RenderedVideos,
                                                       render, trajectory)

__all__ = ["Builder", "MOTION_NAMES", "RenderedVideos", "render", "trajectory"]

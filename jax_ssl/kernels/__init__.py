"""CPU kernels of the library (XLA FFI), built on first use: `jax_ssl/kernels/build.py`."""

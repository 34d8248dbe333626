"""Method registry: name -> MethodSpec."""

from jax_ssl.methods import barlow_twins, simclr, simsiam, vicreg
from jax_ssl.methods.spec import MethodSpec, SSLModel

METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    simclr.SPEC, barlow_twins.SPEC, vicreg.SPEC, simsiam.SPEC)}


def get_method(name: str) -> MethodSpec:
  if name not in METHODS:
    raise ValueError(f"method={name!r} is unknown; choose one of {sorted(METHODS)}")
  return METHODS[name]


__all__ = ["METHODS", "MethodSpec", "SSLModel", "get_method"]

"""Method registry: name -> MethodSpec; "a+b" names mix several methods in one step."""

import functools

# One method per line: a new method adds its import here and its SPEC below.
from jax_ssl.methods import barlow_twins
from jax_ssl.methods import beit
from jax_ssl.methods import byol
from jax_ssl.methods import cnn_jepa
from jax_ssl.methods import cvrl
from jax_ssl.methods import data2vec2
from jax_ssl.methods import dino
from jax_ssl.methods import ibot
from jax_ssl.methods import ijepa
from jax_ssl.methods import jigsaw
from jax_ssl.methods import lejepa
from jax_ssl.methods import mae
from jax_ssl.methods import maskfeat
from jax_ssl.methods import moco_v2
from jax_ssl.methods import moco_v3
from jax_ssl.methods import nepa
from jax_ssl.methods import nnclr
from jax_ssl.methods import relative_position
from jax_ssl.methods import rotation
from jax_ssl.methods import rspnet
from jax_ssl.methods import simclr
from jax_ssl.methods import simmim
from jax_ssl.methods import simsiam
from jax_ssl.methods import swav
from jax_ssl.methods import temporal_pretext
from jax_ssl.methods import tico
from jax_ssl.methods import vicreg
from jax_ssl.methods import videomae
from jax_ssl.methods import vq_tokenizer
from jax_ssl.methods.mixing import SEPARATOR, mix
from jax_ssl.methods.spec import MethodSpec, SSLModel, StepContext

METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    simclr.SPEC,
    barlow_twins.SPEC,
    vicreg.SPEC,
    simsiam.SPEC,
    lejepa.SPEC,
    rotation.SPEC,
    jigsaw.SPEC,
    relative_position.SPEC,
    byol.SPEC,
    cnn_jepa.SPEC,
    moco_v3.SPEC,
    moco_v2.SPEC,
    nnclr.SPEC,
    dino.SPEC,
    swav.SPEC,
    mae.SPEC,
    simmim.SPEC,
    vq_tokenizer.SPEC,
    beit.SPEC,
    maskfeat.SPEC,
    tico.SPEC,
    nepa.SPEC,
    ibot.SPEC,
    data2vec2.SPEC,
    ijepa.SPEC,
    videomae.SPEC,
    temporal_pretext.SPEC,
    cvrl.SPEC,
    rspnet.SPEC,
)}


def unknown_parts(name: str) -> list[str]:
  """The parts of a (possibly mixed) method name that are not registered methods."""
  return [part for part in name.split(SEPARATOR) if part not in METHODS]


@functools.lru_cache(maxsize=None)
def get_method(name: str) -> MethodSpec:
  """The spec of `name`; "simclr+rotation" is `mix` of the two specs, in that order."""
  unknown = unknown_parts(name)
  if unknown:
    raise ValueError(f"method={name!r}: {unknown} unknown; choose from {sorted(METHODS)}, "
                     f"or join several with '{SEPARATOR}' to mix them")
  parts = name.split(SEPARATOR)
  return METHODS[name] if len(parts) == 1 else mix([METHODS[part] for part in parts])


__all__ = ["METHODS", "MethodSpec", "SSLModel", "StepContext", "get_method", "mix",
           "unknown_parts"]

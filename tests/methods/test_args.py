"""The typed arguments of every method (SimCLR, Barlow Twins, VICReg, SimSiam, LeJEPA, BYOL,
MoCo v3, MoCo v2, NNCLR, DINO, SwAV, the pretext tasks, MAE, SimMIM, MaskFeat, the VQ
tokenizer, BEiT) and of a mix: each `Args` / `Heads` refuses an impossible value in one line
naming the key, the value and what is allowed; a misspelt key is refused naming the closest,
from the experiment's config (`Experiment.from_config`) and from the command line
(`load.apply_overrides`); the build step loads a teacher once."""

import dataclasses
import types

import ml_collections
import pytest

from conftest import tiny_config
from jax_ssl import config as config_lib
from jax_ssl import methods
from jax_ssl.config import build, load, typed
from jax_ssl.errors import ConfigError
from jax_ssl.methods.spec import MethodSpec, NoHeads, Teacher

# (method, section, {key: bad value}, the whole one-line message)
BAD_VALUES = [
    ("simclr", "method_args", {"temperature": 0.0},
     "method_args.temperature=0.0; must be > 0 (NT-Xent's tau)"),
    ("simclr", "heads", {"projector_num_layers": 0}, "heads.projector_num_layers=0; must be > 0"),
    ("barlow_twins", "method_args", {"off_diagonal_weight": -1e-3},
     "method_args.off_diagonal_weight=-0.001; must be >= 0 (lambda of the off-diagonal term)"),
    ("vicreg", "method_args", {"variance_weight": -1},
     "method_args.variance_weight=-1.0; must be >= 0 (a term's weight)"),
    ("simsiam", "heads", {"predictor_hidden_dim": 0}, "heads.predictor_hidden_dim=0; must be > 0"),
    ("lejepa", "method_args", {"num_views": 0},
     "method_args.num_views=0; need an integer >= 1"),
    ("lejepa", "method_args", {"sigreg_weight": 1.5},
     "method_args.sigreg_weight=1.5; must be in [0, 1] (lambda)"),
    ("byol", "method_args", {"base_momentum": 1.5},
     "method_args.base_momentum=1.5; must be in [0, 1] (the target's EMA momentum at step 0, "
     "raised to 1 on a cosine)"),
    ("moco_v3", "method_args", {"temperature": "0.2"},
     "method_args.temperature='0.2' has type str; expected float"),
    ("moco_v2", "method_args", {"queue_size": 0},
     "method_args.queue_size=0; need an integer >= 1 (the rows of the queue)"),
    ("nnclr", "method_args", {"queue_size": 2.5},
     "method_args.queue_size=2.5 has type float; expected int"),
    ("dino", "method_args", {"teacher_temp": 0},
     "method_args.teacher_temp=0.0; must be > 0 (a softmax temperature)"),
    ("dino", "heads", {"num_prototypes": 0}, "heads.num_prototypes=0; need an integer >= 1"),
    ("swav", "method_args", {"sinkhorn_iterations": 0},
     "method_args.sinkhorn_iterations=0; need an integer >= 1"),
    ("swav", "heads", {"num_prototypes": 0}, "heads.num_prototypes=0; need an integer >= 1"),
    ("simclr+rotation", "method_args", {"simclr": {"temperature": -1}},
     "method_args.simclr.temperature=-1.0; must be > 0 (NT-Xent's tau)"),
    ("simclr+rotation", "method_args", {"rotation": {"weight": -0.5}},
     "method_args.rotation.weight=-0.5; must be >= 0 (the weight of rotation's loss in the sum)"),
    ("simclr+rotation", "heads", {"simclr": {"projector_hidden_dim": 0}},
     "heads.simclr.projector_hidden_dim=0; must be > 0"),
    # pretext tasks and masked image modelling
    ("rotation", "heads", {"classifier_num_layers": 0},
     "heads.classifier_num_layers=0; must be >= 1 (1: a linear classifier)"),
    ("jigsaw", "method_args", {"grid": 4}, "method_args.grid=4; use one of (2, 3)"),
    ("jigsaw", "method_args", {"grid": 2, "num_permutations": 30},
     "method_args.num_permutations=30; a 2x2 grid has 24 permutations, use 1 to 24"),
    ("jigsaw", "method_args", {"tile_statistics": "batch"},
     "method_args.tile_statistics='batch'; use one of ('unit', 'images')"),
    ("jigsaw", "heads", {"classifier_hidden_dim": 0},
     "heads.classifier_hidden_dim=0; must be > 0"),
    ("relative_position", "method_args", {"jitter": -1}, "method_args.jitter=-1; must be >= 0"),
    ("relative_position", "method_args", {"neighbours": "all", "grid": 2},
     "method_args.neighbours='all' needs the 3x3 grid's centre; set method_args.grid=3 or "
     "method_args.neighbours='one'"),
    ("mae", "method_args", {"mask_ratio": 1.0},
     "method_args.mask_ratio=1.0; must be in [0, 1) (the fraction of the patches masked)"),
    ("mae", "heads", {"decoder_dim": 30, "decoder_num_heads": 4},
     "heads.decoder_dim=30 is not divisible by heads.decoder_num_heads=4; set them so that it "
     "is"),
    ("simmim", "method_args", {"mask_strategy": "grid"},
     "method_args.mask_strategy='grid'; use one of ('random', 'block')"),
    ("simmim", "method_args", {"mask_unit": 0},
     "method_args.mask_unit=0; must be >= 1 (1 masks single patches)"),
    ("maskfeat", "method_args", {"normalization": "block"},
     "method_args.normalization='block'; use one of ('cell', 'patch') (each cell's histogram, "
     "as the official code, or each patch's)"),
    ("maskfeat", "method_args", {"min_block_patches": 0},
     "method_args.min_block_patches=0; must be >= 1"),
    ("vq_tokenizer", "method_args", {"commitment_weight": -0.5},
     "method_args.commitment_weight=-0.5; must be >= 0"),
    ("vq_tokenizer", "heads", {"num_codes": 0}, "heads.num_codes=0; must be > 0"),
    ("beit", "method_args", {"mask_ratio": -0.1},
     "method_args.mask_ratio=-0.1; must be in [0, 1) (the fraction of the patches masked)"),
    ("beit", "method_args", {"tokenizer_workdir": 3},
     "method_args.tokenizer_workdir=3 has type int; expected str"),
]


@pytest.mark.parametrize("method, section, values, message", BAD_VALUES,
                         ids=[f"{m}-{','.join(v)}" for m, _, v, _ in BAD_VALUES])
def test_args_and_heads_refuse_impossible_values_in_one_line(method, section, values, message):
  spec = methods.get_method(method)
  kind = spec.args_type if section == "method_args" else spec.heads_type
  typed.from_mapping(kind, {}, f"{section}.")  # the defaults are valid
  with pytest.raises(ConfigError) as info:
    typed.from_mapping(kind, values, f"{section}.")
  assert str(info.value) == message


# (method, section, misspelt key (dotted below the section), the key it should have been)
MISSPELT = [
    ("simclr", "method_args", "temprature", "temperature"),
    ("simclr", "heads", "projector_hiden_dim", "projector_hidden_dim"),
    ("barlow_twins", "method_args", "off_diagonal", "off_diagonal_weight"),
    ("vicreg", "method_args", "covariance", "covariance_weight"),
    ("simsiam", "heads", "predictor_hidden", "predictor_hidden_dim"),
    ("lejepa", "method_args", "num_slice", "num_slices"),
    ("byol", "method_args", "base_momentun", "base_momentum"),
    ("moco_v3", "heads", "predictor_dim", "predictor_hidden_dim"),
    ("moco_v2", "method_args", "queue_len", "queue_size"),
    ("nnclr", "method_args", "queuesize", "queue_size"),
    ("dino", "heads", "bottleneck", "bottleneck_dim"),
    ("swav", "heads", "num_prototype", "num_prototypes"),
    ("simclr+rotation", "method_args", "simclr.temprature", "simclr.temperature"),
    ("simclr+rotation", "heads", "rotation.classifier_hiden_dim", "rotation.classifier_hidden_dim"),
    # pretext tasks and masked image modelling
    ("rotation", "heads", "classifier_hidden", "classifier_hidden_dim"),
    ("jigsaw", "method_args", "num_permutation", "num_permutations"),
    ("relative_position", "method_args", "neighbors", "neighbours"),
    ("mae", "heads", "decoder_dimm", "decoder_dim"),
    ("simmim", "method_args", "mask_units", "mask_unit"),
    ("maskfeat", "method_args", "orientation", "orientations"),
    ("vq_tokenizer", "heads", "num_code", "num_codes"),
    ("beit", "method_args", "tokenizer_dir", "tokenizer_workdir"),
]


@pytest.mark.parametrize("method, section, key, closest", MISSPELT,
                         ids=[f"{m}-{k}" for m, _, k, _ in MISSPELT])
def test_a_misspelt_key_is_refused_naming_the_closest(method, section, key, closest):
  """In the experiment's config (`Experiment.from_config`, what the entry point types the
  config with) and as an override (`--config.<section>.<key>`: the open
  sections are typed by the Args / Heads); in-process, no data, no training. Before the typed
  Args a misspelt head key passed silently."""
  config = tiny_config("unused", "unused")
  config.method = method
  config.method_args, config.heads = {}, {}
  node = config[section]
  *parents, leaf = key.split(".")
  for parent in parents:
    node[parent] = {}
    node = node[parent]
  node[leaf] = 1
  with pytest.raises(ConfigError) as info:
    config_lib.Experiment.from_config(config)
  assert str(info.value) == (f"config key '{section}.{key}' is unknown; did you mean "
                             f"'{section}.{closest}'?")
  config[section] = ml_collections.ConfigDict()
  with pytest.raises(ConfigError) as info:
    load.apply_overrides(config, [(f"{section}.{key}", "1")])
  assert str(info.value) == (f"config key '{section}.{key}' is unknown (--config.{section}."
                             f"{key}=1); did you mean '{section}.{closest}'?")


def test_overrides_of_keys_the_experiment_leaves_out_are_typed_by_the_fields():
  """A key left at its Args / Heads default may be set from the command line; its value
  takes the field's type (an int given for a float field is a float)."""
  config = tiny_config("unused", "unused")
  config.method = "simclr+rotation"
  config.method_args, config.heads = ml_collections.ConfigDict(), ml_collections.ConfigDict()
  load.apply_overrides(config, [("method_args.simclr.temperature", "1"),
                                ("method_args.rotation.weight", "2"),
                                ("heads.rotation.classifier_hidden_dim", "32")])
  assert config.method_args.simclr.temperature == 1.0
  assert isinstance(config.method_args.simclr.temperature, float)
  experiment = config_lib.Experiment.from_config(config)
  args, heads = experiment.method_args, experiment.heads
  assert (args.simclr.temperature, args.rotation.weight, args.simclr.weight) == (1.0, 2.0, 1.0)
  assert heads.rotation.classifier_hidden_dim == 32
  assert typed.to_dict(heads.simclr) == typed.to_dict(methods.METHODS["simclr"].heads_type())
  with pytest.raises(ConfigError, match=r"^--config.heads.rotation.classifier_hidden_dim=wide: "
                                        r"heads.rotation.classifier_hidden_dim takes an integer"):
    load.apply_overrides(config, [("heads.rotation.classifier_hidden_dim", "wide")])


def test_the_build_step_loads_a_teacher_once_and_hands_it_to_the_method(monkeypatch):
  """`load_teacher` reads files: the build step calls it once per run and gives the same
  Teacher to make_heads and init_method_state (and its graphdef to the step)."""
  loaded = []

  @dataclasses.dataclass(frozen=True)
  class Args:
    source: str = "run"

  def load_teacher(args):
    loaded.append(args.source)
    return Teacher(graphdef="graphdef", params={"w": 1.0}, info={"num_codes": 3})

  received = []

  def make_heads(feature_dim, heads, args, rngs, *, teacher):
    received.append(teacher)
    return {}

  def init_method_state(args, heads, *, teacher):
    received.append(teacher)
    return {"teacher": teacher.params}

  spec = MethodSpec(name="fake", num_views=1, make_heads=make_heads, objective=None,
                    args_type=Args, heads_type=NoHeads, init_method_state=init_method_state,
                    load_teacher=load_teacher)
  monkeypatch.setattr(methods, "get_method", lambda name: spec)
  # No backbone to build (this is about the teacher): a stand-in with a feature width.
  monkeypatch.setattr(build, "build_backbone",
                      lambda config, in_channels, rngs, num_frames=None:
                      types.SimpleNamespace(feature_dim=4))
  config = tiny_config("unused", "unused")
  config.method_args = ml_collections.ConfigDict({"source": "elsewhere"})
  config.heads = ml_collections.ConfigDict()
  config.online_probe = False
  config = config_lib.Experiment.from_config(config)  # method_args typed by the fake's Args
  method = config_lib.build_method(config)
  config_lib.build_model(config, 1, 0, method=method)
  state = config_lib.init_method_state(config, method=method)
  assert loaded == ["elsewhere"] and received == [method.teacher, method.teacher]
  assert state == {"teacher": {"w": 1.0}} and method.teacher_graphdef == "graphdef"

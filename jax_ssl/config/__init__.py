"""The one place that reads the experiment config and turns it into explicit arguments.

Everything downstream (models, methods, losses, data, optimizer) takes plain arguments;
only this package and the trainer's config section know the config's key names:
`checks.py` (schema, validation, saved-config defaults, resume compatibility) and
`build.py` (method arguments and state, views, model, optimizer).
"""

from jax_ssl.config.build import (build_backbone, build_model, build_optimizer,
                                  evaluation_encoder, init_method_state, method_args,
                                  view_configs)
from jax_ssl.config.checks import (FREE, SCHEMA, validate, validate_against_data,
                                   with_saved_defaults)
from jax_ssl.config.resume import (HISTORY_FILE, SCHEDULE_KEYS, STATE_KEYS, Resume,
                                   check_resume_compatible, describe_changes, record_config)

__all__ = ["FREE", "HISTORY_FILE", "Resume", "SCHEDULE_KEYS", "SCHEMA", "STATE_KEYS",
           "describe_changes", "record_config", "build_backbone", "build_model", "build_optimizer",
           "check_resume_compatible", "evaluation_encoder", "init_method_state", "method_args", "validate",
           "validate_against_data", "view_configs", "with_saved_defaults"]

"""Configuration: dataclasses with every field's default and reason (schema.py), YAML presets, and typed
overrides parsed like the command line (options.py: load_config)."""
from .options import ConfigArgs, load_config, parse, parse_config_overrides  # noqa: F401
from .schema import (MODEL_FORMS, PRESET_DIRS, RETIRED, BackgroundConfig, Config, DataConfig, MeshConfig,  # noqa: F401
                     ModelConfig, OutputConfig, PriorConfig, TrainConfig, ViewerConfig, config_from_dict, preset_path,
                     validate)

"""A run's folder: its manifest (scene.json: the one reader and writer) and reopening a finished run."""
from .manifest import Run, open_run, parse_ids, read_manifest, write_manifest  # noqa: F401

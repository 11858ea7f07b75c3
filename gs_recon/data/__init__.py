from .scene import Scene, load_scene  # noqa: F401
from .types import ObjectInfo  # noqa: F401

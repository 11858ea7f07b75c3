from .errors import SceneError  # noqa: F401
from .scene import ObjectInfo, Scene, load_scene  # noqa: F401

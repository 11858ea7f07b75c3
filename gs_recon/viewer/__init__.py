"""The browser viewers (viser): ``SceneViewer`` for a finished run (app.py) and ``LiveViewer`` for a run in
training (live.py); what they share is in common.py."""
from .app import SceneViewer, ViewObject
from .live import LiveViewer

__all__ = ["SceneViewer", "ViewObject", "LiveViewer"]

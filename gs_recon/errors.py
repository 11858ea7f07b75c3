"""User-facing input errors: one line, naming the file and the fix."""


class SceneError(ValueError):
    """Bad or unsupported input. str(e) is a single line fit to print to the user."""

"""Command-line entry points: ``gs-recon <command>`` (setup.py console script) and tools/*.py wrappers."""

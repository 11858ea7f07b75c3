"""``python -m gs_recon COMMAND ...`` == ``gs-recon COMMAND ...``."""
from .cli.main import main

raise SystemExit(main())

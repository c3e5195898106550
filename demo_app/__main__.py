"""``python3 demo_app ...`` (the folder) or ``python3 -m demo_app ...`` (from its parent folder)."""

import sys
from pathlib import Path

if not __package__:  # run as a folder: its parent makes ``demo_app`` importable as a package
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from demo_app.cli import main  # noqa: E402

sys.exit(main())

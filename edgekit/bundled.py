"""Files shipped inside the package: the quickstart recipe, its English texts, the device profiles.

The package is their one copy: ``edgekit/recipes/`` and ``edgekit/devices/`` go into the wheel as
package data, and the repository's ``recipes/quickstart.yaml``, ``recipes/data`` and ``devices``
are symlinks to them. So a checkout, an editable install and a wheel all read the same files
from the same place, README's paths stay readable and copyable, no second copy can drift, and
the wheel holds real files (the symlinks point into the package, never out of it).
``tests/test_package.py`` checks the links and the wheel.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def bundled(*parts: str) -> Path:
    """The shipped file or folder ``edgekit/<parts>``, as a path on disk.

    Found through importlib.resources, so a wheel install finds what a checkout does. edgekit is
    always installed unpacked (its runtimes load native libraries, never from a zip), so this is
    a real path, and errors can name the file.
    """
    return Path(files("edgekit").joinpath(*parts))

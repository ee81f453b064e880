"""Print the third-party requirements of the given Interpedia projects, one per line.

The image build installs these in a layer of their own, before it copies any source:
the layer is then rebuilt only when a pyproject.toml's dependencies change, not on every
code edit. Interpedia's own projects (`interpedia-*`) are left out; they are installed
from source afterwards without their dependencies.

    python scripts/image_requirements.py packages/core apps/webapi ... > requirements.txt
"""

import re
import sys
import tomllib
from pathlib import Path


def third_party_requirements(projects: list[str]) -> list[str]:
    requirements: set[str] = set()
    for project in projects:
        pyproject = tomllib.loads((Path(project) / "pyproject.toml").read_text())
        for requirement in pyproject["project"].get("dependencies", []):
            name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
            if not name.lower().startswith("interpedia-"):
                requirements.add(requirement)
    return sorted(requirements)


if __name__ == "__main__":
    print("\n".join(third_party_requirements(sys.argv[1:])))

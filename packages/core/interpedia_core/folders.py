"""Replacing a folder whole: readers see the old folder or the new one, never half of one.

Trained transcoder sets (`interpedia_formats.transcoder_set`) and the packaged model's
converted snapshot (`interpedia_runtime.packaged`) are folders of several files that other
processes may read while they are written. Both are written into a temporary folder beside
the target (same filesystem, so the final rename is atomic) and renamed into place.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing_folder(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target` to write into; when the block ends
    normally it replaces `target` (whatever was there), when it raises `target` is left as
    it was. Either way no temporary folder is left behind."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

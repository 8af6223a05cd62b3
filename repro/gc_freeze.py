"""Import torch with no garbage collection, then freeze what is alive.

Importing torch leaves about a million long-lived objects, and every collection walks them
all again: during torch's own import, during the imports after it, and once more as the
interpreter exits. A process that keeps torch to its end frees nothing by collecting them,
so none runs inside the block, and what is alive after it is frozen (left out of every
later collection, the one at exit included); then collection goes on as before. On a
2-core machine about a quarter of a bare ``import torch`` process, start to exit.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_imports() -> Iterator[None]:
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()

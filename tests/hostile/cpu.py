"""CPU time of one call, the measure of the fuzz tests' "no call takes more than 100 ms".

Process CPU time, not wall time, so a loaded CI machine does not fail the property; and the
garbage collector is paused during the call, since a full collection of the test process's
heap (tens to hundreds of ms late in a long run) is not the cost of the input being parsed.
"""

from __future__ import annotations

import gc
import time
from typing import Any, Callable

CPU_LIMIT = 0.100


def cpu_of(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``(fn(*args, **kwargs), CPU seconds)``; exceptions propagate."""
    enabled = gc.isenabled()
    gc.disable()
    start = time.process_time()
    try:
        return fn(*args, **kwargs), time.process_time() - start
    finally:
        if enabled:
            gc.enable()

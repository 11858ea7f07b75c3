"""Python's cyclic garbage collector around a run's setup (no torch import here: the CLI uses it first)."""
from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def gc_paused(freeze: bool = False):
    """Python's cyclic garbage collector off for the block, back as it was after. freeze: when the block ends
    without an error, move every object there is into the collector's permanent generation (gc.freeze) before
    the collector is back on, so that its first passes do not walk them; gc.unfreeze() hands them back.

    Setup (imports, the scene, the diffusion models, the initial Gaussians) only grows the heap, and each time it
    grows by a quarter the collector re-scans every object: on the tiny-prior demo 7 full passes over up to 460k
    objects, ~2 s of collector time on 2 cores that collected almost nothing. Reference counting still frees
    what is not in a cycle. pipeline.run freezes what setup built and unfreezes it when the run ends, so cycles
    made during setup are collected then; the train command imports the pipeline (torch, gsplat: 170k objects)
    the same way."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
        if freeze:
            gc.freeze()
    finally:
        if was_on:
            gc.enable()

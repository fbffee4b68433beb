"""LG-Transformer presets (Li et al., "Local-to-Global Self-Attention in Vision Transformers", arXiv
2107.04735): Swin-T/S trunks whose window attention becomes local-to-global attention.

Nothing here is sourced: the release (ljpadam/LG-Transformer) could not be read and only the paper's
abstract was reachable, so its tables are unknown. Every choice is inferred and named in the note.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, register_preset

# Paths per stage: the coarsest path pools the stride-4 map (56 at 224 px) by 8 to 7×7, one window,
# so every stage reasons from local windows up to the whole map (stage 4 is already one window).
PATHS = [4, 3, 2, 1]


def lg(depths: list[int]) -> dict[str, Any]:
    # Imported here: importing zoo.swin at module level would register Swin's presets before this
    # module's turn and reorder the zoo (families list in module order).
    from archbench.zoo.swin import swin

    arch = swin(96, depths, [3, 6, 12, 24])
    for stage, paths in zip(arch["stages"], PATHS):
        stage["block"] = {"type": "local_global", "params": {**stage["block"]["params"], "paths": paths}}
    return arch


_SRC = "arXiv 2107.04735 abstract only; ljpadam/LG-Transformer not readable (no snapshot could be listed)"
_NOTE = (
    "no figure published that could be read; inferred: Swin-{} widths/depths/heads/window 7, "
    "paths 4/3/2/1 by stage (pool ratios 1, 2, 4, 8), shared qkv, summed paths, bilinear upsampling"
)
register_preset("lg_t", lambda: lg([2, 2, 6, 2]), Published(None, None, _SRC, None, _NOTE.format("T")), family="LG-Transformer")
register_preset("lg_s", lambda: lg([2, 2, 18, 2]), Published(None, None, _SRC, None, _NOTE.format("S")), family="LG-Transformer")

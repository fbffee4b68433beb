"""RegionViT presets (Chen et al., "RegionViT: Regional-to-Local Attention for Vision Transformers",
ICLR 2022): configs from IBM/RegionViT@77000c2fcf regionvit/regionvit.py, figures from its README.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, pyramid, register_preset

WINDOW = 7  # kernel_sizes [7, 7, 7, 7]: 7×7 local tokens per regional token, regional patch 28


def regionvit(dims: list[int], depths: list[int], heads: list[int], local_stem: str) -> dict[str, Any]:
    return pyramid(
        stem={"type": "regionvit", "params": {"local_stem": local_stem, "window": WINDOW}},
        dims=dims,
        depths=depths,
        block=lambda i: {"type": "regional", "params": {"heads": heads[i], "window": WINDOW, "mlp_ratio": 4.0, "qkv_bias": True}},
        downsample={"type": "regionvit"},
        head={"type": "regionvit"},
    )


_SRC = "IBM/RegionViT@77000c2fcf README.md (ImageNet-1k table), regionvit/regionvit.py"
# The release ships no FLOP counter and the README states no method; fvcore is in its requirements.
_NOTE = (
    "FLOPs are MACs with both attention steps counted (regional and local QK^T and AV). The matrix "
    "products alone (convs, linears, attention: 2.415/5.339/7.410/13.046 G for Ti/S/M/B) round to "
    "the README's 2.4/5.3/7.4/13.0; our total adds fvcore's LayerNorm MACs (+0.2-0.4%: "
    "2.429/5.360/7.433/13.078; fvcore on the released code: 2.426/5.355/7.431/13.074), which match "
    "only if the README truncated. Without attention "
    "(module-hook counters such as ptflops) S and M give 5.20/7.22: too low. The relative-bias add "
    "is not a MAC (it would be < 0.1%)."
)

register_preset(
    "regionvit_ti",
    lambda: regionvit([64, 128, 256, 512], [2, 2, 8, 2], [2, 4, 8, 16], "3conv"),
    Published("13.8", "2.4", _SRC, "80.4", _NOTE),
    family="RegionViT",
)
register_preset(
    "regionvit_s",
    lambda: regionvit([96, 192, 384, 768], [2, 2, 8, 2], [3, 6, 12, 24], "3conv"),
    Published("30.6", "5.3", _SRC, "82.6", _NOTE),
    family="RegionViT",
)
register_preset(
    "regionvit_m",
    lambda: regionvit([96, 192, 384, 768], [2, 2, 14, 2], [3, 6, 12, 24], "1conv"),
    Published("41.2", "7.4", _SRC, "83.1", _NOTE),
    family="RegionViT",
)
register_preset(
    "regionvit_b",
    lambda: regionvit([128, 256, 512, 1024], [2, 2, 14, 2], [4, 8, 16, 32], "1conv"),
    Published("72.7", "13.0", _SRC, "83.2", _NOTE),
    family="RegionViT",
)

"""Focal Transformer presets (Yang et al., "Focal Self-attention for Local-Global Interactions in
Vision Transformers", NeurIPS 2021), as configs/focal_{tiny,small,base}_patch4_window7_224.yaml.

Swin-like pyramid: patch-4 conv + LN stem, 2×2/2 conv + LN between stages (the release's
non-conv PatchEmbed), window 7, two focal levels, ring 3, pooled regions 7/5/3/1, "fc" pooling.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, pyramid, register_preset

FOCAL_WINDOWS = (7, 5, 3, 1)


def focal(dim: int, depths: list[int], heads: list[int], drop_path_rate: float) -> dict[str, Any]:
    def block(stage: int) -> dict[str, Any]:
        return {
            "type": "focal",
            "params": {
                "heads": heads[stage],
                "window_size": 7,
                "expand_size": 3,
                "focal_level": 2,
                "focal_window": FOCAL_WINDOWS[stage],
                "focal_pool": "fc",
            },
        }

    return pyramid(
        stem={"type": "patchify", "params": {"patch_size": 4, "norm": "layernorm"}},
        dims=[dim, 2 * dim, 4 * dim, 8 * dim],
        depths=depths,
        block=block,
        downsample={"type": "conv", "params": {"kernel": 2, "norm": "layernorm", "norm_position": "post"}},
        drop_path_rate=drop_path_rate,
    )


_SRC = "microsoft/Focal-Transformer@57bb303158 README.md; configs/focal_*_patch4_window7_224.yaml"
_NOTE = (
    "GFLOPs from the release's analytic flops() (Swin-style, = MACs): {analytic} G. Our fvcore count, {ours} G, "
    "adds the 12 extra ring keys its code attends to (132 vs the 120 flops() assumes: +{ring} M) and LayerNorm "
    "at 5 per element (+{ln} M), and skips the pooled tokens' unused queries (-{pooled_q} M)"
)
register_preset(
    "focal_t",
    lambda: focal(96, [2, 2, 6, 2], [3, 6, 12, 24], 0.2),
    Published("28.9", "4.9", _SRC, "82.2", _NOTE.format(analytic="4.924", ours="4.963", ring="32.5", ln="13.9", pooled_q="7.1")),
    family="Focal Transformer",
)
register_preset(
    "focal_s",
    lambda: focal(96, [2, 2, 18, 2], [3, 6, 12, 24], 0.3),
    Published("51.1", "9.4", _SRC, "83.6", _NOTE.format(analytic="9.432", ours="9.493", ring="54.2", ln="21.1", pooled_q="14.2")),
    family="Focal Transformer",
)
register_preset(
    "focal_b",
    lambda: focal(128, [2, 2, 18, 2], [4, 8, 16, 32], 0.5),
    Published("89.8", "16.4", _SRC, "84.0", _NOTE.format(analytic="16.371", ours="16.446", ring="72.3", ln="28.2", pooled_q="25.2")),
    family="Focal Transformer",
)

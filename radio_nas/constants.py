"""Numbers several layers share (one spelling each)."""

from __future__ import annotations

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel mean of ImageNet RGB in [0, 1] (torchvision/timm convention)."""
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
"""OpenAI CLIP's input normalisation (also what RADIO's input conditioner applies)."""
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

"""InternVL's chat template (ChatML form used by InternVL2.5/3), rendered once for every engine
that takes a raw prompt, so they all see the same text around the images."""

from __future__ import annotations

from collections.abc import Callable

from benchbench.config.scenario import IMAGE_PLACEHOLDER
from benchbench.workload.build import WorkloadImage, WorkloadRequest

TEMPLATE_NAME = "internvl2_5-chatml"
IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"


def render_prompt(request: WorkloadRequest, image_text: Callable[[int, WorkloadImage], str]) -> str:
    """The full prompt, each <image> replaced by ``image_text(position, image)``, ending at the assistant turn."""
    images = iter(enumerate(request.images))
    parts = [f"<|im_start|>system\n{request.system_prompt}<|im_end|>\n"]
    for message in request.messages:
        pieces = message.text.split(IMAGE_PLACEHOLDER)
        content = pieces[0] + "".join(image_text(*next(images)) + piece for piece in pieces[1:])
        parts.append(f"<|im_start|>{message.role}\n{content}<|im_end|>\n")
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def expanded_image_text(tiles_per_image: tuple[int, ...], tokens_per_tile: int) -> Callable[[int, WorkloadImage], str]:
    """InternVL's in-prompt form of an image: <img>, one <IMG_CONTEXT> per image token, </img>."""
    return lambda position, _image: IMG_START + IMG_CONTEXT * (tiles_per_image[position] * tokens_per_tile) + IMG_END

"""Named presets: ready-made chains of steps from the catalogue, for the API, the page and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    """A named list of steps, validated against the catalogue like any job's."""

    name: str
    title: str
    description: str
    steps: tuple[dict[str, Any], ...]

    def schema(self) -> dict[str, Any]:
        """Describe this preset for the API and the page."""
        return {"name": self.name, "title": self.title, "description": self.description, "ops": list(self.steps)}


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("thumbnail-512", "Thumbnail 512", "Shrink to fit within 512×512 pixels.",
               ({"op": "thumbnail", "width": 512, "height": 512},)),
        Preset("pencil-sketch", "Pencil sketch", "Dark outlines on white, like a pencil drawing.",
               ({"op": "grayscale"}, {"op": "denoise", "size": 5}, {"op": "edges", "normalize": True},
                {"op": "invert"})),
        Preset("poster-8", "8-colour poster", "Redraw the image with its 8 most representative colours.",
               ({"op": "quantize", "colors": 8},)),
        Preset("analyse", "Analyse",
               "Dominant colours, perceptual hashes and statistics; the image itself is kept as it is.",
               ({"op": "palette"}, {"op": "hash"}, {"op": "stats"})),
    )
}


def steps_for(name: str) -> list[dict[str, Any]]:
    """Return the steps of preset `name`, or raise ValueError naming the known ones."""
    preset = PRESETS.get(name)
    if preset is None:
        raise ValueError(f"unknown preset {name!r} (presets: {', '.join(PRESETS)})")
    return [dict(step) for step in preset.steps]


def describe() -> list[dict[str, Any]]:
    """Describe every preset, in declaration order."""
    return [preset.schema() for preset in PRESETS.values()]

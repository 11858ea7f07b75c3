"""The neutral structures every parser fills (whatever the input format)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ObjectInfo:
    id: int
    name: str
    prompt: str
    category: str = ""  # objects.json "category" (the exemplar prior's folder), else the name
    appearance_prompt: str = ""  # the appearance stage's prompt (DP-Recon's *_prompt_texture.json), else prompt

    def __post_init__(self):
        self.category = self.category or self.name
        self.appearance_prompt = self.appearance_prompt or self.prompt

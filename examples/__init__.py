"""The built-in example shot: real footage and the style frame it was demonstrated with.

Twelve frames of the walk clip from the "Video Style Transfer" research project (a woman
walking past a mountain at golden hour, 500×281 sRGB JPEGs, every second frame) and its style
image (a yurt under a grey, cloudy sky): MIT-licensed, Rong Liu 2022, see ``walk/LICENSE``.
They install with the package, so ``shotstyle demo`` works from a wheel as from a checkout.
"""

from __future__ import annotations

import os

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "walk")
PLATE = os.path.join(FOLDER, "walk.####.jpg")     # frames 1, 3, ... 23
STYLE = os.path.join(FOLDER, "seed_in47.jpg")
FRAMES_PER_SECOND = 12                            # every second frame of a 24 fps shot

"""`grade`: a style model that is its global grade alone (a 3D LUT over the working space).

No network and no local term (`bound` 0): the look issue's `--arch grade` fits the lattice in
closed form from the keyframes and the style, and the model renders exactly what its exported
`.cube` holds (up to the grade's slope 1 beyond the lattice, engine/grade.py). On a CPU such a
model never runs torch: the inference stage applies its lattice with OpenColorIO
(engine/gradehost.py), fused with the colour conversions around it.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from shotstyle.server.engine.grade import DEFAULT_SIZE, LatticeGrade
from shotstyle.server.engine.networks.base import StyleNetwork


class GradeOnly(StyleNetwork):
    """The global grade and nothing else.

    Args:
        grade_size: nodes per axis of the grade's lattice.
    """

    grade: LatticeGrade

    bound = 0.0  # no local term
    trains = False

    @classmethod
    def training_arguments(cls, resolution: int, targeted: bool) -> dict[str, Any]:
        return {}

    def __init__(self, grade_size: int = DEFAULT_SIZE):
        super().__init__()
        self.grade = LatticeGrade(grade_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.grade(x)

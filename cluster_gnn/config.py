"""Settings as frozen dataclasses, and the project's paths.

One :class:`XTBConfig` is used everywhere (structure search, features, the app) so that
every number in the project comes from the same level of theory. It is recorded with
each structure and each model.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "PROJECT_ROOT",
    "DATA_DIR",
    "MODELS_DIR",
    "STRUCTURES_DIR",
    "default_source_dir",
    "XTBConfig",
    "SearchConfig",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("CLUSTER_GNN_DATA", PROJECT_ROOT / "data"))
MODELS_DIR = Path(os.environ.get("CLUSTER_GNN_MODELS", PROJECT_ROOT / "models"))
STRUCTURES_DIR = DATA_DIR / "structures"


def default_source_dir() -> Path:
    """Where the published data set lives: ``$CLUSTER_GNN_SOURCE`` or ``../shared/datasets``."""
    env = os.environ.get("CLUSTER_GNN_SOURCE")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "datasets"


@dataclass(frozen=True)
class XTBConfig:
    """Level of theory for every xTB calculation in the project.

    Parameters
    ----------
    method:
        tblite parametrisation, ``"GFN1-xTB"`` or ``"GFN2-xTB"``. GFN1-xTB is the
        default: it was chosen by the validity checks in ``benchmarks/level_of_theory.py``
        (SCF convergence on all 216 clusters, sane charges, agreement with the authors'
        NBO charges); see docs/experiments.md.
    electronic_temperature:
        Fermi smearing temperature in K. 5000 K makes the SCF converge on the
        open-shell Mo/Ta/V clusters; energies are free energies at that smearing.
    max_iterations:
        SCF iteration cap.
    accuracy:
        tblite numerical accuracy (lower is tighter).
    """

    method: str = "GFN1-xTB"
    electronic_temperature: float = 5000.0
    max_iterations: int = 250
    accuracy: float = 1.0

    def __post_init__(self):
        if self.method not in ("GFN1-xTB", "GFN2-xTB"):
            raise ValueError(f"method must be GFN1-xTB or GFN2-xTB, got {self.method!r}")
        if not 0.0 < self.electronic_temperature <= 50000.0:
            raise ValueError(
                f"electronic_temperature must be in (0, 50000] K, got {self.electronic_temperature}"
            )
        if self.max_iterations < 1:
            raise ValueError("max_iterations must be positive")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def label(self) -> str:
        """Short label such as ``GFN1-xTB/5000K``, written into result files."""
        return f"{self.method}/{self.electronic_temperature:g}K"


@dataclass(frozen=True)
class SearchConfig:
    """Settings of the global-minimum search (see :mod:`cluster_gnn.search`).

    Parameters
    ----------
    n_starts:
        Random compact starting geometries relaxed per spin state.
    fmax:
        Force threshold of the final relaxation in eV/Å.
    max_steps:
        FIRE step cap per relaxation.
    n_refine:
        The lowest distinct minima re-relaxed by basin hopping (0 disables it).
    hop_steps:
        Basin-hopping steps per refined minimum.
    n_isomers:
        Runner-up isomers kept next to the global minimum.
    seed:
        Base random seed; start ``i`` of a cluster uses ``seed + i``.
    xtb:
        Level of theory.
    """

    n_starts: int = 12
    fmax: float = 0.05
    max_steps: int = 400
    n_refine: int = 2
    hop_steps: int = 4
    n_isomers: int = 3
    seed: int = 2025
    xtb: XTBConfig = field(default_factory=XTBConfig)

    def __post_init__(self):
        if self.n_starts < 1:
            raise ValueError("n_starts must be at least 1")
        if self.fmax <= 0:
            raise ValueError("fmax must be positive (eV/Å)")

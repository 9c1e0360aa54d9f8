"""Atoms + xTB features -> :class:`torch_geometric.data.Data`, and the bundled graphs.

Nodes are atoms. Node features ``x`` (:data:`NODE_FEATURES`, shape ``[num_atoms, 14]``):

- xTB, per atom (:data:`XTB_NODE_FEATURES`): Mulliken charge (e), s, p and d
  valence-shell populations (e), and the sum of the atom's Wiberg/Mayer bond orders;
- element, per atom (``data/elements.csv``): group, period, Pauling electronegativity,
  covalent radius (Å), first ionisation energy (eV), electron affinity (eV), the free
  atom's valence s and d electron counts, and a metal flag.

Edges (both directions) join atoms closer than ``edge_scale`` x the sum of their covalent
radii (ASE's table; default 2.5, which reaches second neighbours; 1.3 x is a chemical bond,
:data:`~cluster_gnn.structures.BOND_SCALE`). Edge features ``edge_attr``
(:data:`EDGE_FEATURES`, shape ``[num_edges, num_rbf + 2]``): the distance in Å expanded on
``num_rbf`` Gaussians between 1 Å and ``cutoff``, the distance over the radii sum, and the
xTB bond order.

Graph features ``u`` (:data:`GRAPH_FEATURES`, shape ``[1, 82]``, :func:`graph_features`):
first the cluster descriptors (:data:`CLUSTER_FEATURES`, 22): total charge (e), atom
counts, ligand atoms per metal atom (:func:`ligands_per_metal`) and the cluster-level xTB
descriptors (:func:`xtb_descriptors`); then the composition as one-hot classes
(:data:`COMPOSITION_CLASSES`, 60: metal atoms 1-8 and 9 or more; S, C and H atoms 0-6 and
7 or more; S, C and H atoms per metal atom in bins of 0.25).

:func:`load_graphs` builds the graphs of the bundled clusters from ``data/features``. Why
these features were chosen, with the figures, is in ``docs/experiments.md``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import torch
from ase.data import covalent_radii
from torch_geometric.data import Data

from .datasets import NBO8, load_clusters, load_element_table, load_nbo_descriptors
from .electronic import AtomFeatures, load_feature_tables
from .errors import DatasetError, FeatureMismatchError
from .structures import BOND_SCALE, is_metal

__all__ = ["GraphConfig", "build_graph", "bond_edges", "graph_features", "NODE_FEATURES", "EDGE_FEATURES", "GRAPH_FEATURES",
           "XTB_NODE_FEATURES", "XTB_GRAPH_FEATURES", "CLUSTER_FEATURES", "COMPOSITION_CLASSES",
           "composition_classes", "cluster_feature_columns", "element_features", "ligands_per_metal",
           "xtb_descriptors", "load_graphs", "LIGANDS"]

#: Ligand elements whose atoms per metal atom are graph features.
LIGANDS = ("S", "C", "H", "N")

#: the node features that come from xTB (the rest are the element's)
XTB_NODE_FEATURES = ("charge", "s_population", "p_population", "d_population", "bond_order_sum")
NODE_FEATURES = XTB_NODE_FEATURES + (
    "group", "period", "electronegativity", "covalent_radius", "ionization_energy",
    "electron_affinity", "valence_s", "valence_d", "is_metal",
)
#: the graph features that come from xTB (the rest are composition)
XTB_GRAPH_FEATURES = (
    "q_metal_max", "q_metal_min", "q_metal_mean", "q_metal_total", "dq_metal_ligand_max",
    "s_metal_mean", "d_metal_mean", "homo_energy", "homo_lumo_gap", "dipole",
)
#: the cluster's descriptors: charge, atom counts, stoichiometry and the xTB descriptors
CLUSTER_FEATURES = (
    "total_charge", "num_atoms", "n_metal", "n_H", "n_C", "n_N", "n_S", "n_other",
    "S_per_metal", "C_per_metal", "H_per_metal", "N_per_metal",
) + XTB_GRAPH_FEATURES
_RATIO_EDGES = np.arange(0.0, 2.01, 0.25)  # ligand atoms per metal atom: bins of 0.25, the last open
#: the composition as classes, one-hot: metal atoms (1-8, 9 or more), S, C and H atoms (0-6,
#: 7 or more) and S, C and H atoms per metal atom in bins of 0.25 (the last: 2 or more)
COMPOSITION_CLASSES = tuple(
    [f"n_metal={k}" for k in range(1, 9)] + ["n_metal>=9"]
    + [name for e in ("S", "C", "H") for name in [f"n_{e}={k}" for k in range(7)] + [f"n_{e}>=7"]]
    + [name for e in ("S", "C", "H")
       for name in [f"{e}_per_metal=[{lo:g},{hi:g})" for lo, hi in zip(_RATIO_EDGES[:-1], _RATIO_EDGES[1:])]
       + [f"{e}_per_metal>={_RATIO_EDGES[-1]:g}"]]
)
GRAPH_FEATURES = CLUSTER_FEATURES + COMPOSITION_CLASSES


@dataclass(frozen=True)
class GraphConfig:
    """How a cluster becomes a graph.

    Parameters
    ----------
    edge_scale:
        Atoms closer than ``edge_scale * (r_i + r_j)`` (covalent radii, Å) are joined by an
        edge (1.3 would be the chemical bonds only).
    cutoff:
        Upper end of the radial basis in Å.
    num_rbf:
        Number of Gaussian radial basis functions for the distance.
    """

    edge_scale: float = 2.5
    cutoff: float = 7.0
    num_rbf: int = 8

    def __post_init__(self):
        if self.edge_scale <= 0 or self.cutoff <= 1.0 or self.num_rbf < 1:
            raise ValueError("edge_scale must be > 0, cutoff > 1 Å and num_rbf >= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def edge_features(self) -> tuple[str, ...]:
        return tuple(f"rbf_{k}" for k in range(self.num_rbf)) + ("distance_ratio", "bond_order")


EDGE_FEATURES = GraphConfig().edge_features

_ELEMENT_COLUMNS = ("group", "period", "electronegativity", "covalent_radius", "ionization_energy",
                    "electron_affinity", "valence_s", "valence_d")
_ELEMENTS = None


def element_features(atomic_numbers) -> np.ndarray:
    """Periodic properties of each atom, shape ``[num_atoms, 9]`` (the element part of
    :data:`NODE_FEATURES`, metal flag last)."""
    global _ELEMENTS
    if _ELEMENTS is None:
        _ELEMENTS = load_element_table()
    z = np.asarray(atomic_numbers, dtype=int)
    props = _ELEMENTS.loc[z, list(_ELEMENT_COLUMNS)].to_numpy(dtype=float)
    metal = np.array([is_metal(s) for s in _ELEMENTS.loc[z, "symbol"]], dtype=float)
    return np.column_stack([props, metal])


def graph_features(atoms, features: AtomFeatures) -> dict:
    """Cluster-level features ``u`` in the order of :data:`GRAPH_FEATURES`: total charge
    (e), atom counts (metals, H, C, N, S, other non-metals), ligand atoms per metal atom
    (S, C, H, N), the xTB descriptors of
    :func:`xtb_descriptors` (charges in e, populations in e,
    energies in eV, dipole in e·Å)."""
    symbols = atoms.get_chemical_symbols()
    metal = [is_metal(sym) for sym in symbols]
    out = {"total_charge": float(features.charge), "num_atoms": float(len(symbols)), "n_metal": float(sum(metal))}
    for element in ("H", "C", "N", "S"):
        out[f"n_{element}"] = float(symbols.count(element))
    out["n_other"] = float(len(symbols) - sum(metal) - sum(symbols.count(e) for e in ("H", "C", "N", "S")))
    out.update(ligands_per_metal(Counter(symbols)))
    out.update(xtb_descriptors(atoms, features))
    out.update(composition_classes(Counter(symbols)))
    return {name: out[name] for name in GRAPH_FEATURES}


def ligands_per_metal(counts: dict) -> dict:
    """The stoichiometry, ``{"S_per_metal": ..., "C_per_metal": ..., "H_per_metal": ...,
    "N_per_metal": ...}``: ligand atoms per metal atom from element counts ``{symbol: n}``
    (a cluster without metal atoms counts as one)."""
    n_metal = max(sum(n for s, n in counts.items() if is_metal(s)), 1)
    return {f"{lig}_per_metal": counts.get(lig, 0) / n_metal for lig in LIGANDS}


def xtb_descriptors(atoms, features: AtomFeatures) -> dict:
    """Cluster-level xTB descriptors of one cluster, in the order of
    :data:`XTB_GRAPH_FEATURES`: metal charges (max, min, mean, total; e), the largest
    metal-ligand charge difference (e), mean metal s and d populations (e), HOMO energy and
    HOMO-LUMO gap (eV), dipole magnitude (e·Å)."""
    metal = np.array([is_metal(s) for s in atoms.get_chemical_symbols()])
    q = features.charges
    qm = q[metal] if metal.any() else np.zeros(1)
    ql = q[~metal] if (~metal).any() else np.zeros(1)
    return {
        "q_metal_max": float(qm.max()), "q_metal_min": float(qm.min()), "q_metal_mean": float(qm.mean()),
        "q_metal_total": float(qm.sum()), "dq_metal_ligand_max": float(qm.max() - ql.min()),
        "s_metal_mean": float(features.s_population[metal].mean()) if metal.any() else 0.0,
        "d_metal_mean": float(features.d_population[metal].mean()) if metal.any() else 0.0,
        "homo_energy": features.homo_energy, "homo_lumo_gap": features.homo_lumo_gap,
        "dipole": float(np.linalg.norm(features.dipole)),
    }


def composition_classes(counts: dict) -> dict:
    """One-hot composition classes of :data:`COMPOSITION_CLASSES` (1.0 for the cluster's
    class, 0.0 otherwise) from element counts ``{symbol: n}``."""
    n_metal = sum(n for s, n in counts.items() if is_metal(s))
    hot = {f"n_metal={max(n_metal, 1)}" if n_metal < 9 else "n_metal>=9"}
    ratios = ligands_per_metal(counts)
    for e in ("S", "C", "H"):
        n = counts.get(e, 0)
        hot.add(f"n_{e}={n}" if n < 7 else f"n_{e}>=7")
        k = int(np.searchsorted(_RATIO_EDGES, ratios[f"{e}_per_metal"] + 1e-9, side="right")) - 1
        hot.add(f"{e}_per_metal=[{_RATIO_EDGES[k]:g},{_RATIO_EDGES[k + 1]:g})" if k < len(_RATIO_EDGES) - 1
                else f"{e}_per_metal>={_RATIO_EDGES[-1]:g}")
    return {name: float(name in hot) for name in COMPOSITION_CLASSES}


def cluster_feature_columns(u) -> np.ndarray:
    """The :data:`CLUSTER_FEATURES` part of graph features ``u`` ``[num_graphs, 82]`` (a
    tensor or array; ``u`` starts with them, the composition classes follow), as an array
    ``[num_graphs, 22]``."""
    return np.asarray(u)[:, :len(CLUSTER_FEATURES)]


def build_graph(atoms, features: AtomFeatures, config: GraphConfig | None = None, y: float | None = None,
                name: str | None = None):
    """One cluster as a graph.

    Parameters
    ----------
    atoms:
        :class:`ase.Atoms`, positions in Å, ``num_atoms`` atoms.
    features:
        :class:`~cluster_gnn.electronic.AtomFeatures` of the same atoms.
    config:
        Bonding rule and edge featurisation.
    y:
        Measured lg(k1), if known.

    Returns
    -------
    torch_geometric.data.Data
        ``x`` ``[num_atoms, 14]``, ``edge_index`` ``[2, num_edges]``, ``edge_attr``
        ``[num_edges, num_rbf + 2]``, ``u`` ``[1, 82]``, ``pos`` ``[num_atoms, 3]``,
        ``z`` ``[num_atoms]``, ``y`` ``[1]`` (NaN when unknown), ``name``.
    """
    config = config or GraphConfig()
    numbers = atoms.get_atomic_numbers()
    if len(numbers) != features.num_atoms or not np.array_equal(numbers, features.atomic_numbers):
        raise FeatureMismatchError(
            f"features are for {features.num_atoms} atoms ({features.atomic_numbers.tolist()}), "
            f"the structure has {len(numbers)} ({numbers.tolist()})"
        )
    elem = element_features(numbers)
    x = np.column_stack([features.charges, features.s_population, features.p_population,
                         features.d_population, features.bond_orders.sum(axis=1), elem])
    pos = atoms.get_positions()
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    radii = covalent_radii[numbers]
    radii_sum = radii[:, None] + radii[None, :]
    adjacency = (dist < config.edge_scale * radii_sum) & ~np.eye(len(numbers), dtype=bool)
    src, dst = np.nonzero(adjacency)
    d = dist[src, dst]
    centers = np.linspace(1.0, config.cutoff, config.num_rbf)
    width = (config.cutoff - 1.0) / max(config.num_rbf - 1, 1)
    rbf = np.exp(-(((d[:, None] - centers[None, :]) / width) ** 2))
    edge_attr = np.column_stack([rbf, d / radii_sum[src, dst], features.bond_orders[src, dst]])
    u = np.array([[float(v) for v in graph_features(atoms, features).values()]])
    return Data(
        x=torch.tensor(x, dtype=torch.float32),
        edge_index=torch.tensor(np.stack([src, dst]), dtype=torch.long),
        edge_attr=torch.tensor(edge_attr.reshape(-1, config.num_rbf + 2), dtype=torch.float32),
        u=torch.tensor(u, dtype=torch.float32),
        pos=torch.tensor(pos, dtype=torch.float32),
        z=torch.tensor(numbers, dtype=torch.long),
        y=torch.tensor([np.nan if y is None else float(y)], dtype=torch.float32),
        name=name,
    )


def bond_edges(graph) -> np.ndarray:
    """The chemical bonds among a graph's edges, shape ``[2, num_bonds]`` (both directions):
    edges shorter than :data:`~cluster_gnn.structures.BOND_SCALE` x the sum of the covalent
    radii (the rule of :func:`~cluster_gnn.structures.fragments`), read from the
    ``distance_ratio`` edge feature. Explanations use these, not the longer message-passing
    edges, for "connected" and "bond"."""
    ratio = graph.edge_attr[:, -2].numpy()
    return graph.edge_index.numpy()[:, ratio < BOND_SCALE]


def load_graphs(names=None, graph_config: GraphConfig | None = None, features_dir=None, table=None) -> list:
    """Graphs of the bundled clusters (features from ``data/features``), with ``y`` =
    measured lg(k1) ``[1]`` (NaN if unknown), ``aux`` = the authors' 8 NBO descriptors
    ``[1, 8]`` (NaN where the authors give none; auxiliary training targets only) and
    ``fold`` (0 outside the published folds), ``kind`` (homonuclear / heteronuclear),
    ``family`` (metal set x ligand set), ``metals``, ``ligands`` attributes.

    Clusters without computed features are left out; :class:`DatasetError` if none has them.
    """
    table = load_clusters() if table is None else table
    feats = load_feature_tables(features_dir)
    nbo = load_nbo_descriptors().set_index("name")
    rows = table if names is None else table[table["name"].isin(list(names))]
    graphs = []
    for _, row in rows.iterrows():
        if row["name"] not in feats:
            continue
        atoms, f = feats[row["name"]]
        lg = None if np.isnan(row["lg_k1"]) else float(row["lg_k1"])
        g = build_graph(atoms, f, graph_config, y=lg, name=row["name"])
        g.fold = int(row["fold"]) if str(row["fold"]) not in ("<NA>", "nan") else 0
        g.kind, g.family, g.metals, g.ligands = row["kind"], row["family"], row["metals"], row["ligands"]
        aux = nbo.loc[row["name"], NBO8].to_numpy(float) if row["name"] in nbo.index else np.full(len(NBO8), np.nan)
        g.aux = torch.tensor(aux[None], dtype=torch.float32)
        graphs.append(g)
    if not graphs:
        raise DatasetError("no cluster has features yet: run 'cluster-gnn structures' and 'cluster-gnn features'")
    return graphs

"""Per-atom contributions by masking atoms, and how faithful a ranking of atoms is.

Everything here works on a *value function*: ``value(present) -> [num_members, num_masks]``,
the predicted lg(k1) of each member when only the atoms flagged in ``present`` (bool,
``[num_masks, num_atoms]``) are shown to it. What "masking" an atom means:

- :class:`GraphMasking` (the GIN), ``mode="reference"`` (the default): the atom's node
  features are replaced by the reference atom, the mean atom of the member's training
  clusters (``model.x_mean``). Its element, charge and populations are hidden; its position,
  its bonds and edge features and the cluster-level inputs (total charge, multiplicity,
  composition classes) stay. ``mode="remove"``: the atom and its edges are taken out of the
  graph (it passes no message and is not pooled); the cluster-level inputs stay.
- :class:`FormulaMasking` (a composition model such as the ``prior_blend`` behind mixed
  clusters): the atom is taken out of the formula; charge and multiplicity stay; with no
  metal atom left the value is the training mean.

Attributions (shape ``[num_members, num_atoms]``, lg units):

- :func:`shapley_values`: exact Shapley values over all ``2**N`` coalitions for up to
  :data:`EXACT_MAX_ATOMS` atoms, sampled permutations (antithetic pairs) above. They sum to
  f(all atoms shown) - f(no atom shown).
- :func:`occlusion`: f(all shown) - f(all but atom i shown).

Faithfulness, :func:`deletion_fidelity`: hide the atoms one by one in the order a method
ranks them and average the change of the ensemble's prediction over the steps; the same
for a random order (exactly, over all subsets of each size, when every coalition is known).
Fidelity is the difference in lg units: > 0 when the ranking finds the atoms the prediction
depends on faster than chance.
"""
from __future__ import annotations

from math import factorial

import numpy as np
import torch

from .structures import is_metal

__all__ = ["GraphMasking", "FormulaMasking", "CoalitionTable", "shapley_values", "occlusion",
           "deletion_fidelity", "EXACT_MAX_ATOMS"]

#: Largest cluster whose Shapley values are computed from all 2**N coalitions.
EXACT_MAX_ATOMS = 12
_CHUNK_ATOMS = 40_000  # atoms per forward pass when evaluating coalitions


class GraphMasking:
    """Value function of GNN members on one graph: masked atoms replaced by the member's
    reference atom (its training mean, ``model.x_mean``, shape ``[num_node_features]``;
    ``mode="reference"``) or taken out of the graph with their edges (``mode="remove"``)."""

    MODES = ("reference", "remove")

    def __init__(self, models, graph, mode: str = "reference"):
        if mode not in self.MODES:
            raise ValueError(f"unknown masking mode {mode!r}; choose from {self.MODES}")
        self.models = list(models)
        self.graph = graph
        self.mode = mode
        self.num_atoms = int(graph.x.shape[0])

    def _copies(self, n: int):
        """``n`` copies of the graph as one batch: ``x, edge_index, edge_attr, batch, u``."""
        g, atoms = self.graph, self.num_atoms
        offsets = (torch.arange(n) * atoms).repeat_interleave(g.edge_index.shape[1])
        edge_index = g.edge_index.repeat(1, n) + offsets
        return (g.x.repeat(n, 1), edge_index, g.edge_attr.repeat(n, 1),
                torch.arange(n).repeat_interleave(atoms), g.u.repeat(n, 1))

    @torch.no_grad()
    def __call__(self, present: np.ndarray) -> np.ndarray:
        present = np.asarray(present, bool).reshape(-1, self.num_atoms)
        g = self.graph
        out = np.empty((len(self.models), len(present)))
        step = max(1, _CHUNK_ATOMS // self.num_atoms)
        for start in range(0, len(present), step):
            chunk = torch.as_tensor(present[start:start + step])
            n = len(chunk)
            x, edge_index, edge_attr, batch, u = self._copies(n)
            keep = chunk.reshape(-1)
            if self.mode == "remove":
                # masked atoms go to one extra graph (index n, discarded) without their edges;
                # one always-present extra atom keeps that graph in the batch
                live = keep[edge_index[0]] & keep[edge_index[1]]
                edge_index, edge_attr = edge_index[:, live], edge_attr[live]
                batch = torch.cat([torch.where(keep, batch, torch.full_like(batch, n)), torch.tensor([n])])
                x, u = torch.cat([x, x[:1]]), torch.cat([u, u[:1]])
                keep = torch.cat([keep, torch.tensor([True])])
            for k, model in enumerate(self.models):
                model.eval()
                if self.mode == "remove":
                    out[k, start:start + n] = model(x, edge_index, edge_attr, batch, u)[:n].numpy()
                else:
                    reference = getattr(model, "x_mean", torch.zeros(g.x.shape[1])).to(g.x.dtype)
                    out[k, start:start + n] = model(torch.where(keep.reshape(-1, 1), x, reference), edge_index,
                                                    edge_attr, batch, u).numpy()
        return out

    @torch.no_grad()
    def cluster_masked(self) -> np.ndarray:
        """Each member's value with every atom shown and the cluster-level inputs ``u`` set to
        the member's training mean (``model.u_mean``), shape ``[num_members]``."""
        g = self.graph
        batch = torch.zeros(self.num_atoms, dtype=torch.long)
        return np.array([float(m.eval()(g.x, g.edge_index, g.edge_attr, batch,
                                        getattr(m, "u_mean", g.u[0]).reshape(1, -1))[0]) for m in self.models])


class FormulaMasking:
    """Value function of a composition model: ``predict(names) -> [num_names]`` (lg k1 of
    formulas such as ``"Rh2CoH3"``, charge and multiplicity fixed by the caller), with the
    masked atoms taken out of the formula; ``empty_value`` when no metal atom is left."""

    def __init__(self, predict, symbols, empty_value: float):
        self.predict = predict
        self.symbols = list(symbols)
        self.num_atoms = len(self.symbols)
        self.empty_value = float(empty_value)
        self.metal = np.array([bool(is_metal(s)) for s in self.symbols])
        self.models = [predict]

    def __call__(self, present: np.ndarray) -> np.ndarray:
        present = np.asarray(present, bool).reshape(-1, self.num_atoms)
        elements = list(dict.fromkeys(self.symbols))
        index = np.array([elements.index(s) for s in self.symbols])
        counts = np.stack([(present & (index == e)).sum(1) for e in range(len(elements))], axis=1)
        unique, inverse = np.unique(counts, axis=0, return_inverse=True)
        element_metal = np.array([bool(self.metal[index == e].any()) for e in range(len(elements))])
        with_metal = (unique[:, element_metal] > 0).any(1)
        values = np.full(len(unique), self.empty_value)
        names = ["".join(f"{e}{c if c > 1 else ''}" for e, c in zip(elements, row) if c) for row in unique[with_metal]]
        if names:
            values[with_metal] = np.asarray(self.predict(names), float)
        return values[np.ravel(inverse)][None, :]


class CoalitionTable:
    """Values of coalitions (bitmask ints, bit i set = atom i shown), evaluated once.

    ``complete`` is True when all ``2**N`` coalitions were evaluated
    (N <= :data:`EXACT_MAX_ATOMS`); ``values`` then is ``[num_members, 2**N]``."""

    def __init__(self, value_function, exact_max_atoms: int = EXACT_MAX_ATOMS):
        self.value = value_function
        self.num_atoms = n = value_function.num_atoms
        self.complete = n <= exact_max_atoms
        self._cache: dict[int, np.ndarray] = {}
        if self.complete:
            masks = np.arange(2 ** n)
            self.values = value_function(_bits(masks, n))
        self.full = (1 << n) - 1

    def get(self, masks) -> np.ndarray:
        """Values of ``masks`` (ints), shape ``[num_members, len(masks)]``."""
        masks = np.asarray(masks, dtype=np.int64)
        if self.complete:
            return self.values[:, masks]
        missing = sorted({int(m) for m in masks} - self._cache.keys())
        if missing:
            got = self.value(_bits(np.array(missing), self.num_atoms))
            for j, m in enumerate(missing):
                self._cache[m] = got[:, j]
        return np.stack([self._cache[int(m)] for m in masks], axis=1)


def _bits(masks: np.ndarray, n: int) -> np.ndarray:
    return ((np.asarray(masks)[:, None] >> np.arange(n)) & 1).astype(bool)


def shapley_values(table: CoalitionTable, n_permutations: int = 128, seed: int = 0) -> np.ndarray:
    """Shapley value of each atom for each member, ``[num_members, num_atoms]`` in lg units:
    exact when ``table.complete``, else from ``n_permutations`` random orders (in antithetic
    pairs, the second the reverse of the first)."""
    n = table.num_atoms
    if table.complete:
        masks = np.arange(2 ** n)
        sizes = _bits(masks, n).sum(1)
        weight = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) for s in range(n)])
        phi = np.zeros((table.values.shape[0], n))
        for i in range(n):
            without = masks[((masks >> i) & 1) == 0]
            gain = table.values[:, without | (1 << i)] - table.values[:, without]
            phi[:, i] = gain @ weight[sizes[without]]
        return phi
    rng = np.random.default_rng(seed)
    orders = []
    for _ in range(max(1, n_permutations // 2)):
        order = rng.permutation(n)
        orders += [order, order[::-1]]
    prefixes = [np.concatenate([[0], np.cumsum(1 << order.astype(np.int64))]) for order in orders]
    values = table.get(np.concatenate(prefixes))
    phi = np.zeros((values.shape[0], n))
    for j, order in enumerate(orders):
        v = values[:, j * (n + 1):(j + 1) * (n + 1)]
        phi[:, order] += np.diff(v, axis=1)
    return phi / len(orders)


def occlusion(table: CoalitionTable) -> np.ndarray:
    """f(all shown) - f(all but atom i shown), ``[num_members, num_atoms]`` in lg units."""
    n = table.num_atoms
    values = table.get([table.full] + [table.full & ~(1 << i) for i in range(n)])
    return values[:, :1] - values[:, 1:]


def deletion_fidelity(table: CoalitionTable, importance, contribution=None, n_random: int = 64,
                      seed: int = 0) -> dict:
    """How much faster the ensemble's prediction moves when atoms are hidden in the order of
    ``importance`` (``[num_atoms]``, larger first) than in a random order.

    Returns ``{"ranked", "random", "fidelity"}`` in lg units: the mean absolute change of the
    member-mean prediction over hiding 1 ... N-1 atoms (hiding all N is the same for every
    order), for the ranking, for a random order (exact expectation over all subsets of each
    size when ``table.complete``, else ``n_random`` orders), and their difference. NaN for
    fewer than 2 atoms.

    With a signed ``contribution`` (``[num_atoms]``, lg units) also ``"signed"``: half the mean
    gap between hiding the most rate-lowering atoms first and hiding the most rate-raising
    atoms first (0 for a random order; > 0 when the signs are right).
    """
    n = table.num_atoms
    if n < 2:
        return {"ranked": float("nan"), "random": float("nan"), "fidelity": float("nan"), "signed": float("nan")}
    order = np.argsort(-np.asarray(importance, float), kind="stable")
    full = table.get([table.full]).mean(0)[0]

    def values(order):
        hidden = np.cumsum(1 << order[:-1].astype(np.int64))
        return table.get(table.full & ~hidden).mean(0)

    def curve(order):
        return np.abs(values(order) - full)

    ranked = float(curve(order).mean())
    signed = float("nan")
    if contribution is not None:
        c = np.asarray(contribution, float)
        signed = 0.5 * float(np.mean(values(np.argsort(c, kind="stable")) - values(np.argsort(-c, kind="stable"))))
    if table.complete:
        masks = np.arange(2 ** n)
        shown = _bits(masks, n).sum(1)
        change = np.abs(table.values.mean(0) - full)
        random = float(np.mean([change[shown == n - k].mean() for k in range(1, n)]))
    else:
        rng = np.random.default_rng(seed)
        random = float(np.mean([curve(rng.permutation(n)).mean() for _ in range(n_random)]))
    return {"ranked": ranked, "random": random, "fidelity": ranked - random, "signed": signed}

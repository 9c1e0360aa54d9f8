"""Which atoms drive the predicted rate: per-atom contributions, how faithful they are, and
the important subgraph.

Methods (:data:`METHODS`), each giving per-atom values for each ensemble member:

- ``shapley``: exact Shapley values of the atoms, by masking
  (:mod:`cluster_gnn.attribution`: a masked atom's features are replaced by the member's mean
  training atom; geometry and the cluster-level inputs stay). Signed, in lg units: how much the
  atom's identity and electronic state raise (+) or lower (-) lg(k1) against an average atom;
  they add up to f(cluster) - f(every atom average).
- ``occlusion`` (the default, :data:`DEFAULT_METHOD`): the change of the prediction when
  that one atom alone is masked (signed, lg units: what replacing the atom by an average one
  would take away). N + 1 evaluations; the highest deletion fidelity of the four over the
  measured clusters (``cluster-gnn explain --fidelity``, docs/explanations.md).
- ``integrated_gradients``: Captum's Integrated Gradients through ``torch_geometric.explain``
  from the same reference (every atom the mean training atom), summed over the features of
  each atom (signed).
- ``gnnexplainer``: GNNExplainer's learned soft mask over node features and edges (unsigned);
  it also gives the bond importances (the chemical bonds of
  :func:`~cluster_gnn.graphs.bond_edges`, summed over both directions and members).

An atom's importance is its share of the absolute values of the member mean (the signed values
are averaged over the members first, as the ensemble's prediction is; shares sum to 1).
Reported with it: the deletion fidelity of each method's ranking
(:func:`~cluster_gnn.attribution.deletion_fidelity`, lg units, > 0 when hiding the top-ranked
atoms first moves the prediction faster than a random order), the agreement of the members
(mean pairwise Spearman), and the most important subgraph connected by chemical bonds
(:func:`important_subgraph`). A composition model (the ``prior_blend`` behind mixed clusters)
is explained the same way with atoms taken out of the formula
(:class:`~cluster_gnn.attribution.FormulaMasking`): atoms of one element then share one value.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import spearmanr
from torch_geometric.explain import Explainer, GNNExplainer
from torch_geometric.explain.algorithm import CaptumExplainer
from torch_geometric.nn import MessagePassing

from .attribution import CoalitionTable, FormulaMasking, GraphMasking, deletion_fidelity, occlusion, shapley_values
from .graphs import bond_edges

__all__ = ["Explanation", "explain_graph", "explain_prediction", "explaining_members", "important_subgraph",
           "importance_contrast", "importance_summary", "contribution_summary", "METHODS", "DEFAULT_METHOD", "EVEN_IMPORTANCE"]

METHODS = ("shapley", "occlusion", "integrated_gradients", "gnnexplainer")
#: The method the app and the bundled tables use: the highest deletion fidelity for both the GIN
#: and the composition model over the measured clusters (docs/explanations.md).
DEFAULT_METHOD = "occlusion"
_SIGNED = ("shapley", "occlusion", "integrated_gradients")

#: Importance contrast below which no atom is said to stand out (:func:`importance_summary`).
EVEN_IMPORTANCE = 1.25


@dataclass
class Explanation:
    """Importances of one cluster.

    Attributes
    ----------
    importance: per-atom importance of ``method``, shape ``[num_atoms]``, sums to 1.
    method: the method behind ``importance`` (the first one asked for).
    contribution: signed per-atom contribution of ``method`` in lg units, member mean,
        shape ``[num_atoms]``; None for an unsigned method (``gnnexplainer``).
    by_method: ``{method: [num_atoms]}`` importances (shares) per method.
    fidelity: ``{method: {"ranked", "random", "fidelity"}}`` deletion fidelity in lg units
        (:func:`~cluster_gnn.attribution.deletion_fidelity`).
    member_agreement: ``{method: mean pairwise Spearman of the members' importances}``.
    atoms_effect: f(cluster) - f(every atom masked), lg units: what the atoms' identities
        move; ``cluster_effect``: f(cluster) - f(cluster-level inputs at their training mean).
    bond_importance: ``{(i, j): value}`` for bonded pairs ``i < j`` (sums to 1; GNNExplainer only).
    method_agreement: Spearman correlation of the first two methods' importances.
    member_stability: ``member_agreement`` of ``method``.
    subgraph: atom indices of the most important connected subgraph.
    n_members: members used.
    model: what was explained (``"gin"`` or ``"prior_blend"``).
    """

    importance: np.ndarray
    by_method: dict
    bond_importance: dict
    method_agreement: float
    member_stability: float
    subgraph: list[int]
    n_members: int
    method: str = DEFAULT_METHOD
    contribution: np.ndarray | None = None
    fidelity: dict = field(default_factory=dict)
    member_agreement: dict = field(default_factory=dict)
    atoms_effect: float = float("nan")
    cluster_effect: float = float("nan")
    model: str = "gin"
    extra: dict = field(default_factory=dict)


def importance_contrast(importance) -> float:
    """The largest per-atom share over the even share 1/N (shares summing to 1, shape
    ``[num_atoms]``): 1 when every atom matters equally, N when one atom carries it all."""
    imp = np.asarray(importance, dtype=float)
    return float(imp.max() * imp.size)


def importance_summary(atoms, importance, top: int = 3) -> str:
    """One sentence on how the importance (shares summing to 1, shape ``[num_atoms]``) is
    spread: nearly even (:func:`importance_contrast` under :data:`EVEN_IMPORTANCE`), or the
    ``top`` atoms that carry the most, with their shares in per cent."""
    imp = np.asarray(importance, dtype=float)
    symbols = atoms.get_chemical_symbols()
    if len(imp) != len(symbols):
        raise ValueError(f"got {len(imp)} importances for {len(symbols)} atoms")
    even = 100.0 / len(imp)
    if importance_contrast(imp) < EVEN_IMPORTANCE:
        return (f"The importance is spread almost evenly over the {len(imp)} atoms "
                f"({100 * imp.min():.1f}-{100 * imp.max():.1f} % each, {even:.1f} % if even): "
                "the model singles out no site of this cluster.")
    parts = ", ".join(f"{symbols[i]}{i + 1} {100 * imp[i]:.1f} %" for i in np.argsort(-imp)[:top])
    return f"Most important atoms: {parts} ({even:.1f} % each if the importance were even)."


def contribution_summary(atoms, contribution, top: int = 2) -> str:
    """One sentence on signed contributions (lg units, shape ``[num_atoms]``): the atoms
    that raise the predicted lg(k1) most, those that lower it most, and their sum."""
    c = np.asarray(contribution, float)
    symbols = atoms.get_chemical_symbols()
    if len(c) != len(symbols):
        raise ValueError(f"got {len(c)} contributions for {len(symbols)} atoms")
    order = np.argsort(-c)
    up = [i for i in order[:top] if c[i] > 0]
    down = [i for i in order[::-1][:top] if c[i] < 0]
    name = lambda i: f"{symbols[i]}{i + 1} {c[i]:+.2f}"  # noqa: E731
    parts = []
    if up:
        parts.append("raise the predicted lg k1 most: " + ", ".join(map(name, up)))
    if down:
        parts.append("lower it most: " + ", ".join(map(name, down)))
    body = "; ".join(parts) if parts else "no atom moves the prediction"
    return (f"Against an average atom in their place, the atoms that {body} "
            f"(lg units; all atoms together {c.sum():+.2f}).")


def _spearman(a, b) -> float:
    if np.allclose(a, a[0]) or np.allclose(b, b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _explain_member(model, graph, method: str, epochs: int, seed: int):
    """Per-atom values ``[num_atoms]`` (signed for Integrated Gradients) and edge-mask values
    (GNNExplainer on a message-passing model, else None) of one member."""
    torch.manual_seed(seed)
    passes = any(isinstance(m, MessagePassing) for m in model.modules())  # edges only matter then
    if method == "gnnexplainer":
        algorithm = GNNExplainer(epochs=epochs, lr=0.01)
    elif method == "integrated_gradients":
        baseline = getattr(model, "x_mean", None)
        kwargs = {}
        if baseline is not None:  # Captum's inputs are [1, num_atoms, num_features]
            kwargs["baselines"] = (baseline.detach().expand_as(graph.x).unsqueeze(0).clone(),)
        algorithm = CaptumExplainer("IntegratedGradients", **kwargs)
    else:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    explainer = Explainer(
        model=model, algorithm=algorithm, explanation_type="model",
        node_mask_type="attributes", edge_mask_type="object" if method == "gnnexplainer" and passes else None,
        model_config=dict(mode="regression", task_level="graph", return_type="raw"),
    )
    batch = torch.zeros(graph.x.shape[0], dtype=torch.long)
    exp = explainer(graph.x, graph.edge_index, edge_attr=graph.edge_attr, batch=batch, u=graph.u)
    mask = exp.node_mask.detach()
    node = (mask.sum(dim=1) if method == "integrated_gradients" else mask.abs().sum(dim=1)).numpy().astype(float)
    edge = exp.edge_mask.detach().abs().numpy().astype(float) if exp.get("edge_mask") is not None else None
    return node, edge


def _normalise(v):
    v = np.abs(np.asarray(v, float))
    total = float(np.sum(v))
    return v / total if total > 0 else np.full_like(v, 1.0 / len(v))


def _agreement(rows) -> float:
    """Mean pairwise Spearman correlation of the rows of ``rows`` ``[members, atoms]``."""
    pairs = [_spearman(rows[a], rows[b]) for a in range(len(rows)) for b in range(a + 1, len(rows))]
    return float(np.nanmean(pairs)) if pairs and not np.all(np.isnan(pairs)) else float("nan")


def explain_graph(graph, ensemble, methods=(DEFAULT_METHOD,), max_members: int = 10, epochs: int = 100,
                  subgraph_share: float = 0.5, value_function=None, fidelity: bool = True) -> Explanation:
    """Explain the ensemble's prediction for one graph (see the module docstring).

    Parameters
    ----------
    graph: ``Data`` from :func:`~cluster_gnn.graphs.build_graph`.
    ensemble: :class:`~cluster_gnn.models.Ensemble` or a list of models.
    methods: from :data:`METHODS`; the first gives ``importance``; every one gets its fidelity.
    max_members: members used (one per fold first, then further seeds).
    epochs: GNNExplainer optimisation epochs.
    subgraph_share: importance share the important subgraph must reach.
    value_function: what is explained, if not the members on ``graph`` (e.g. a
        :class:`~cluster_gnn.attribution.FormulaMasking`); then only the masking methods apply.
    fidelity: measure each method's deletion fidelity (evaluates all ``2**N`` coalitions up to
        12 atoms, as exact Shapley values do; occlusion alone needs N + 1).
    """
    models = _pick_members(ensemble, max_members) if value_function is None else []
    masking = value_function or GraphMasking(models, graph)
    table = CoalitionTable(masking) if fidelity or "shapley" in methods else CoalitionTable(masking, exact_max_atoms=0)
    n_members = len(masking.models)
    values, bonds = {}, {}
    ei = graph.edge_index.numpy()
    bond_index = bond_edges(graph)
    bonded = {(int(i), int(j)) for i, j in bond_index.T}
    for method in methods:
        if method == "shapley":
            values[method] = shapley_values(table)
        elif method == "occlusion":
            values[method] = occlusion(table)
        elif value_function is not None:
            raise ValueError(f"{method} needs the graph model; a composition model takes shapley or occlusion")
        else:
            rows = []
            for k, model in enumerate(models):
                node, edge = _explain_member(model, graph, method, epochs, seed=k)
                rows.append(node)
                if edge is not None and edge.size:
                    for (i, j), v in zip(ei.T, edge):
                        if (int(i), int(j)) in bonded:
                            key = (int(min(i, j)), int(max(i, j)))
                            bonds[key] = bonds.get(key, 0.0) + float(v)
            values[method] = np.array(rows)
    by_method = {m: _normalise(v.mean(0)) for m, v in values.items()}
    fidelities = {m: deletion_fidelity(table, by_method[m], values[m].mean(0) if m in _SIGNED else None)
                  for m in methods} if fidelity else {}
    agreement = {m: _agreement(np.abs(v)) for m, v in values.items()}
    first = methods[0]
    total = sum(bonds.values())
    full = table.get([table.full]).mean()
    effects = {"atoms_effect": float(full - table.get([0]).mean())}
    if isinstance(masking, GraphMasking):
        effects["cluster_effect"] = float(full - masking.cluster_masked().mean())
    return Explanation(
        importance=by_method[first], by_method=by_method,
        bond_importance={k: v / total for k, v in sorted(bonds.items())} if total > 0 else {},
        method_agreement=_spearman(by_method[methods[0]], by_method[methods[1]]) if len(methods) > 1 else float("nan"),
        member_stability=agreement[first], subgraph=important_subgraph(by_method[first], bond_index, subgraph_share),
        n_members=n_members, method=first,
        contribution=values[first].mean(0) if first in _SIGNED else None,
        fidelity=fidelities, member_agreement=agreement, model="gin" if value_function is None else "composition",
        **effects)


def _pick_members(ensemble, max_members):
    if isinstance(ensemble, (list, tuple)):
        return list(ensemble)[:max_members]
    by_fold: dict = {}
    for m in ensemble.members:
        by_fold.setdefault(m["fold"], []).append(m["model"])
    ordered = []
    depth = 0
    while len(ordered) < max_members and any(len(v) > depth for v in by_fold.values()):
        for fold in sorted(by_fold, key=str):
            if len(by_fold[fold]) > depth and len(ordered) < max_members:
                ordered.append(by_fold[fold][depth])
        depth += 1
    return ordered


def important_subgraph(importance, edge_index, share: float = 0.5, min_atoms: int = 2) -> list[int]:
    """The most important connected subgraph.

    Start from the most important atom; repeatedly add the most important atom bonded to
    the subgraph, until the subgraph holds at least ``share`` of the total importance and
    ``min_atoms`` atoms (or no bonded atom is left). Returns sorted atom indices.
    """
    importance = np.asarray(importance, float)
    n = len(importance)
    neighbours = {i: set() for i in range(n)}
    for i, j in np.asarray(edge_index).T:
        neighbours[int(i)].add(int(j))
        neighbours[int(j)].add(int(i))
    chosen = [int(np.argmax(importance))]
    total = importance.sum() or 1.0
    while len(chosen) < n:
        if importance[chosen].sum() / total >= share and len(chosen) >= min(min_atoms, n):
            break
        frontier = set().union(*(neighbours[i] for i in chosen)) - set(chosen)
        if not frontier:
            break
        chosen.append(max(frontier, key=lambda i: importance[i]))
    return sorted(chosen)


def explaining_members(ensemble, prediction) -> list:
    """The members that made ``prediction``: its fold's members for an out-of-fold
    prediction of a homonuclear cluster, otherwise the whole ensemble (as a list of models;
    no member saw a mixed cluster)."""
    if prediction.out_of_fold and prediction.fold is not None:
        return [m["model"] for m in ensemble.members if m["fold"] == prediction.fold]
    return _pick_members(ensemble, len(ensemble.members))


def explain_prediction(prediction, ensemble, methods=(DEFAULT_METHOD,), max_members: int = 10,
                       epochs: int = 60, formula_model=None, fidelity: bool = False) -> Explanation:
    """Explain a :class:`~cluster_gnn.predict.Prediction` with the model that made it and store
    the per-atom importance on it (``prediction.importance``, ``prediction.explanation``).

    A GIN prediction is explained with the members that made it (its fold's for an out-of-fold
    one); a ``prior_blend`` one (mixed metals) with ``formula_model = (predict, empty_value)``:
    ``predict(formulas) -> lg k1`` at the prediction's charge and multiplicity, and the value
    with no metal atom left. ``fidelity``: also measure each method's deletion fidelity (all
    coalitions up to 12 atoms: 0.6 s for 9 atoms on 10 members instead of 0.05 s for occlusion
    alone, ``benchmarks/predict_latency.py``)."""
    graph = ensemble.featurize(prediction.atoms, prediction.charge, prediction.multiplicity,
                               features=prediction.features)
    if getattr(prediction, "model", "gin") == "prior_blend" and formula_model is not None:
        predict, empty = formula_model
        masking = FormulaMasking(predict, prediction.atoms.get_chemical_symbols(), empty)
        exp = explain_graph(graph, [], tuple(m for m in methods if m in ("shapley", "occlusion")) or (DEFAULT_METHOD,),
                            value_function=masking, fidelity=fidelity)
        exp.model = "prior_blend"
    else:
        exp = explain_graph(graph, explaining_members(ensemble, prediction), methods, max_members, epochs,
                            fidelity=fidelity)
    prediction.importance = exp.importance
    prediction.explanation = exp
    return exp

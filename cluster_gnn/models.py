"""Graph regressors for lg(k1) and the ensemble that carries their uncertainty.

:class:`ClusterGNN` is a GIN (PyG ``GINEConv``, edge-aware) or, as a baseline, a GCN
(``GCNConv`` with the bond order as edge weight) over the graphs of
:mod:`cluster_gnn.graphs`, with sum + mean + max pooling of every layer's node states
(jumping knowledge), concatenated with the graph features ``u`` and read out by an MLP. With ``num_aux > 0``
a second head reads the same pooled vector and predicts auxiliary targets (the authors'
8 DFT-NBO descriptors, known for the homonuclear clusters only) during training, so the
shared representation has to track the electronic structure, not only the rate
(multi-task learning; the auxiliary head is not used for predictions).
Input scaling (means and standard deviations of the training clusters only) lives in the
model's buffers, so a saved member carries the statistics it was trained with.

:class:`Ensemble` holds the members of one model type (one per fold and seed) and a
:class:`ModelRecord`: how the model's inputs are made (level of theory, graph settings,
feature names in order) and what it was trained on (held-out clusters, domain). Both are
saved in one file under ``models/`` (format :data:`FORMAT_VERSION`) and loaded with
``torch.load(weights_only=True)``. :meth:`Ensemble.featurize` is the one way to turn a
structure into that model's input; loading a file whose record differs from what this
code computes raises :class:`~cluster_gnn.errors.FeatureMismatchError`.
"""
from __future__ import annotations

import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import util
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import GCNConv, GINEConv, global_add_pool, global_max_pool, global_mean_pool

from .config import XTBConfig
from .domain import Domain, domain_vector
from .electronic import AtomFeatures, compute_xtb_features
from .errors import FeatureMismatchError, ModelFileError
from .files import atomic_write
from .graphs import GRAPH_FEATURES, NODE_FEATURES, GraphConfig, build_graph

_IS_METAL = NODE_FEATURES.index("is_metal")  # the sites readout's rate sites

__all__ = ["ModelConfig", "ModelRecord", "ClusterGNN", "Ensemble", "FORMAT_VERSION"]

#: Version of the model file. 6: a typed :class:`ModelRecord` (``record``) replaces the
#: untyped ``meta`` dict; 5: one-hot composition classes in u; 4: ligand-per-metal ratios
#: in u; 3: edge_scale and the bond_order_sum node feature; 2: float16 weights.
FORMAT_VERSION = 6


def _remove_generated_modules() -> None:
    """torch_geometric renders each conv layer's ``propagate`` into a ``.py`` file in the
    temp folder and never deletes it (``torch_geometric.template.module_from_template``,
    ``delete=False``): one file per layer type per process. Remove this process's files at
    exit (the modules are already loaded), so runs leave the temp folder as they found it."""
    tmp = Path(tempfile.gettempdir()).resolve()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.startswith("torch_geometric.") and path and Path(path).resolve().parent == tmp:
            Path(path).unlink(missing_ok=True)


def _register_cleanup() -> None:
    # multiprocessing's exit hook runs at interpreter exit and at the end of worker processes
    # (which skip atexit), so one registration covers the CLI and its training workers
    util.Finalize(None, _remove_generated_modules, exitpriority=1)


_register_cleanup()


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`ClusterGNN`.

    Parameters
    ----------
    conv: ``"gin"`` (GINEConv, default) or ``"gcn"`` (GCNConv baseline).
    num_node_features, num_edge_features, num_graph_features: input widths, the lengths
        of the feature lists (:data:`~cluster_gnn.graphs.NODE_FEATURES`, the graph
        config's edge features, :data:`~cluster_gnn.graphs.GRAPH_FEATURES`; 14, 10, 82);
        :meth:`for_record` takes them from a :class:`ModelRecord`.
    hidden: width of node states.
    num_layers: message-passing layers.
    dropout: dropout before the readout MLP.
    num_aux: auxiliary training targets per graph (0: none; 8 for the NBO descriptors).
    readout: ``"pooled"`` (sum, mean and max of every layer's node states and the graph features
        into one MLP) or ``"sites"``: the rate as a sum over metal sites, lg k1 = log10 sum_i 10^t_i,
        t_i (lg units) from site i's node states and the graph features; 10^(t_i - lg k1) is its share.
    """

    conv: str = "gin"
    num_node_features: int = len(NODE_FEATURES)
    num_edge_features: int = len(GraphConfig().edge_features)
    num_graph_features: int = len(GRAPH_FEATURES)
    hidden: int = 48
    num_layers: int = 3
    dropout: float = 0.1
    num_aux: int = 0
    readout: str = "pooled"

    def __post_init__(self):
        if self.conv not in ("gin", "gcn"):
            raise ValueError(f"conv must be 'gin' or 'gcn', got {self.conv!r}")
        if self.readout not in ("pooled", "sites"):
            raise ValueError(f"readout must be 'pooled' or 'sites', got {self.readout!r}")
        if self.hidden < 1 or self.num_layers < 1 or not 0 <= self.dropout < 1 or self.num_aux < 0:
            raise ValueError("hidden and num_layers must be positive, dropout in [0, 1), num_aux >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_record(cls, record: "ModelRecord", **settings) -> "ModelConfig":
        """The architecture ``settings`` with input widths from ``record``'s feature lists."""
        return cls(num_node_features=len(record.node_features), num_edge_features=len(record.edge_features),
                   num_graph_features=len(record.graph_features), **settings)


@dataclass
class ModelRecord:
    """How a model's inputs are made and what it was trained on, saved with its weights.

    Attributes
    ----------
    level_of_theory: :class:`~cluster_gnn.config.XTBConfig` of the xTB features.
    graph_config: :class:`~cluster_gnn.graphs.GraphConfig` (edges, radial basis).
    node_features, edge_features, graph_features: names of the columns of ``x``
        ``[num_atoms, 14]``, ``edge_attr`` ``[num_edges, 10]`` and ``u`` ``[1, 82]``, in order.
    training_set: the splits the members were trained on (``"published-folds"``).
    held_out: ``{split key: [cluster names]}``, the clusters the members of each key
        never saw (the test clusters of that fold).
    trained_on: every measured cluster some member was trained on (names); what the model
        has seen, e.g. which metal pairs (see :func:`~cluster_gnn.predict.predict_structure`).
    aux_targets: auxiliary training targets (the authors' NBO descriptors), training only.
    train_config: the :class:`~cluster_gnn.training.TrainConfig` used, as a dict.
    train_seconds: wall-clock training time in s.
    domain: the applicability domain (:class:`~cluster_gnn.domain.Domain`), or None;
        its ``threshold`` is the distance beyond which a prediction is an extrapolation.
    """

    level_of_theory: XTBConfig = field(default_factory=XTBConfig)
    graph_config: GraphConfig = field(default_factory=GraphConfig)
    node_features: tuple[str, ...] = NODE_FEATURES
    edge_features: tuple[str, ...] = GraphConfig().edge_features
    graph_features: tuple[str, ...] = GRAPH_FEATURES
    training_set: str = "published-folds"
    held_out: dict[str, list[str]] = field(default_factory=dict)
    trained_on: tuple[str, ...] = ()
    aux_targets: tuple[str, ...] = ()
    train_config: dict = field(default_factory=dict)
    train_seconds: float | None = None
    domain: Domain | None = None

    @classmethod
    def for_code(cls, graph_config: GraphConfig | None = None, **fields) -> "ModelRecord":
        """The record of a model trained now: today's level of theory and feature names."""
        graph_config = graph_config or GraphConfig()
        return cls(level_of_theory=XTBConfig(), graph_config=graph_config, node_features=NODE_FEATURES,
                   edge_features=graph_config.edge_features, graph_features=GRAPH_FEATURES, **fields)

    def differences(self) -> list[str]:
        """What this record says that this code would not compute, one line each (empty
        when the model can be fed by :meth:`Ensemble.featurize`)."""
        expected = ModelRecord.for_code(self.graph_config)
        out = []
        if self.level_of_theory != expected.level_of_theory:
            out.append(f"level of theory: recorded {self.level_of_theory.to_dict()}, "
                       f"this code computes {expected.level_of_theory.to_dict()}")
        for kind in ("node_features", "edge_features", "graph_features"):
            got, want = tuple(getattr(self, kind)), tuple(getattr(expected, kind))
            if got != want:
                missing = [n for n in want if n not in got]
                extra = [n for n in got if n not in want]
                detail = (f"recorded {len(got)}, this code computes {len(want)}"
                          + (f"; not recorded: {missing}" if missing else "")
                          + (f"; not computed: {extra}" if extra else "")
                          + ("; same names in another order" if not missing and not extra else ""))
                out.append(f"{kind.replace('_', ' ')}: {detail}")
        return out

    def check(self, source: str = "the model") -> None:
        """Raise :class:`FeatureMismatchError` naming every difference from this code."""
        diffs = self.differences()
        if diffs:
            raise FeatureMismatchError(
                f"{source} was trained on inputs this version of cluster-gnn does not compute: "
                + "; ".join(diffs) + ". Retrain it with 'cluster-gnn train'")

    def to_dict(self) -> dict:
        """JSON-friendly form (lists for tuples, the domain as :meth:`Domain.to_dict`)."""
        return {"level_of_theory": self.level_of_theory.to_dict(), "graph_config": self.graph_config.to_dict(),
                "node_features": list(self.node_features), "edge_features": list(self.edge_features),
                "graph_features": list(self.graph_features), "training_set": self.training_set,
                "held_out": {str(k): list(v) for k, v in self.held_out.items()},
                "trained_on": list(self.trained_on), "aux_targets": list(self.aux_targets), "train_config": dict(self.train_config),
                "train_seconds": self.train_seconds,
                "domain": None if self.domain is None else self.domain.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelRecord":
        return cls(level_of_theory=XTBConfig(**d["level_of_theory"]), graph_config=GraphConfig(**d["graph_config"]),
                   node_features=tuple(d["node_features"]), edge_features=tuple(d["edge_features"]),
                   graph_features=tuple(d["graph_features"]), training_set=d.get("training_set", ""),
                   held_out={str(k): list(v) for k, v in d.get("held_out", {}).items()},
                   trained_on=tuple(d.get("trained_on", ())), aux_targets=tuple(d.get("aux_targets", ())), train_config=dict(d.get("train_config", {})),
                   train_seconds=d.get("train_seconds"),
                   domain=Domain.from_dict(d["domain"]) if d.get("domain") else None)


class ClusterGNN(nn.Module):
    """GIN (or GCN) regressor of lg(k1).

    ``forward(x, edge_index, edge_attr=None, batch=None, u=None)`` takes node features
    ``x`` ``[num_nodes, num_node_features]``, ``edge_index`` ``[2, num_edges]``,
    ``edge_attr`` ``[num_edges, num_edge_features]``, ``batch`` ``[num_nodes]`` (graph of
    each node; all zeros if omitted) and graph features ``u`` ``[num_graphs,
    num_graph_features]``, all unscaled; returns lg(k1) ``[num_graphs]``.
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        h = config.hidden
        self.embed = nn.Linear(config.num_node_features, h)
        self.convs = nn.ModuleList()
        for _ in range(config.num_layers):
            if config.conv == "gin":
                mlp = nn.Sequential(nn.Linear(h, h), nn.SiLU(), nn.Linear(h, h))
                self.convs.append(GINEConv(mlp, train_eps=True, edge_dim=config.num_edge_features))
            else:
                self.convs.append(GCNConv(h, h))
        self.norms = nn.ModuleList([nn.LayerNorm(h) for _ in range(config.num_layers)])
        readout = 3 * h * (config.num_layers + 1) + config.num_graph_features
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(readout, h), nn.SiLU(),
                                  nn.Linear(h, 1))
        if config.readout == "sites":
            self.site_head = nn.Sequential(nn.Dropout(config.dropout),
                                           nn.Linear(h * (config.num_layers + 1) + config.num_graph_features, h),
                                           nn.SiLU(), nn.Linear(h, 1))
        if config.num_aux:
            self.aux_head = nn.Sequential(nn.Linear(readout, h), nn.SiLU(), nn.Linear(h, config.num_aux))
            self.register_buffer("aux_mean", torch.zeros(config.num_aux))
            self.register_buffer("aux_std", torch.ones(config.num_aux))
        for name, width in (("x", config.num_node_features), ("edge", config.num_edge_features),
                            ("u", config.num_graph_features)):
            self.register_buffer(f"{name}_mean", torch.zeros(width))
            self.register_buffer(f"{name}_std", torch.ones(width))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    def fit_scaling(self, graphs) -> None:
        """Set input and target scaling from training graphs (a list of ``Data``).

        An input that is constant over the training graphs (a composition class no training
        cluster is in, say) gets an infinite scale: it enters the network as 0 whatever its
        value, since its weights never saw it vary and say nothing about it."""
        def stats(t):
            mean, std = t.mean(0), t.std(0)
            return mean, torch.where(std > 1e-6, std, torch.full_like(std, float("inf")))

        self.x_mean, self.x_std = stats(torch.cat([g.x for g in graphs]))
        self.edge_mean, self.edge_std = stats(torch.cat([g.edge_attr for g in graphs]))
        self.u_mean, self.u_std = stats(torch.cat([g.u for g in graphs]))
        y = torch.cat([g.y for g in graphs])
        self.y_mean, self.y_std = y.mean(), y.std().clamp_min(1e-6)
        if self.config.num_aux:
            aux = torch.cat([g.aux for g in graphs])
            known = ~torch.isnan(aux)
            mean = torch.where(known, aux, 0.0).sum(0) / known.sum(0).clamp_min(1)
            var = torch.where(known, (aux - mean) ** 2, 0.0).sum(0) / (known.sum(0) - 1).clamp_min(1)
            self.aux_mean, self.aux_std = mean, var.sqrt().clamp_min(1e-6)

    def forward(self, x, edge_index, edge_attr=None, batch=None, u=None):
        """lg(k1) per graph, shape ``[num_graphs]``."""
        return self.forward_with_aux(x, edge_index, edge_attr, batch, u)[0]

    def forward_with_aux(self, x, edge_index, edge_attr=None, batch=None, u=None):
        """``(lg_k1 [num_graphs], aux [num_graphs, num_aux] or None)``; ``aux`` is in units of
        the training standard deviations (compare with ``(aux - aux_mean) / aux_std``)."""
        if x.shape[-1] != self.config.num_node_features:
            raise FeatureMismatchError(
                f"got {x.shape[-1]} features per atom, model expects {self.config.num_node_features}")
        if batch is None:
            batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        num_graphs = int(batch.max()) + 1 if batch.numel() else 1
        if u is None:
            u = self.u_mean.expand(num_graphs, -1)
        h = self.embed((x - self.x_mean) / self.x_std)
        states = [h]
        if self.config.conv == "gin":
            e = (edge_attr - self.edge_mean) / self.edge_std
            for conv, norm in zip(self.convs, self.norms):
                h = h + torch.nn.functional.silu(norm(conv(h, edge_index, e)))
                states.append(h)
        else:
            weight = edge_attr[:, -1].clamp_min(0.0) if edge_attr is not None else None
            for conv, norm in zip(self.convs, self.norms):
                h = h + torch.nn.functional.silu(norm(conv(h, edge_index, weight)))
                states.append(h)
        pooled = [pool(s, batch, num_graphs) for s in states
                  for pool in (global_add_pool, global_mean_pool, global_max_pool)]
        u_scaled = (u - self.u_mean) / self.u_std
        z = torch.cat(pooled + [u_scaled], dim=-1)
        aux = self.aux_head(z) if self.config.num_aux else None
        if self.config.readout == "sites":
            t = self.site_terms(x, states, u_scaled, batch)
            top = global_max_pool(t.unsqueeze(-1), batch, num_graphs).squeeze(-1)
            total = global_add_pool(torch.pow(10.0, t - top[batch]).unsqueeze(-1), batch, num_graphs).squeeze(-1)
            return top + torch.log10(total), aux
        return self.head(z).squeeze(-1) * self.y_std + self.y_mean, aux

    def site_terms(self, x, states, u_scaled, batch):
        """Per-atom lg k1 terms of the sites readout ``[num_nodes]``; ligands get -1e4 unless a graph has no metal."""
        t = self.site_head(torch.cat(states + [u_scaled[batch]], dim=-1)).squeeze(-1) * self.y_std + self.y_mean
        metal = x[:, _IS_METAL] > 0.5
        has_metal = global_max_pool(metal.float().unsqueeze(-1), batch).squeeze(-1) > 0
        return torch.where(metal | ~has_metal[batch], t, torch.full_like(t, -1e4))

    def predict_graphs(self, graphs) -> np.ndarray:
        """lg(k1) of a list of ``Data`` graphs, shape ``[num_graphs]`` (eval mode, no grad;
        one intra-op thread for a batch of up to :data:`SMALL_BATCH_ATOMS` atoms)."""
        self.eval()
        b = graphs if isinstance(graphs, Batch) else Batch.from_data_list(list(graphs))
        with torch.no_grad(), inference_threads(b.num_nodes):
            return self(b.x, b.edge_index, b.edge_attr, b.batch, b.u).numpy().astype(float)


#: Batches of up to this many atoms run on one intra-op thread: torch's threads spin on
#: graphs of a few atoms (``benchmarks/batch_predict.py``: 57 clusters, one thread is
#: several times faster than the default, same output).
SMALL_BATCH_ATOMS = 20000
_THREADS_LOCK = threading.Lock()
_THREADS_STATE = {"users": 0, "saved": None}


@contextmanager
def inference_threads(num_atoms: int):
    """One torch intra-op thread while a batch of at most :data:`SMALL_BATCH_ATOMS` atoms
    runs; the process's setting is restored when the last concurrent user leaves."""
    if num_atoms > SMALL_BATCH_ATOMS:
        yield
        return
    with _THREADS_LOCK:
        if _THREADS_STATE["users"] == 0:
            _THREADS_STATE["saved"] = torch.get_num_threads()
        _THREADS_STATE["users"] += 1
        torch.set_num_threads(1)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_STATE["users"] -= 1
            if _THREADS_STATE["users"] == 0:
                torch.set_num_threads(_THREADS_STATE["saved"])


class Ensemble:
    """Members of one model type with the record of how their inputs are made.

    Attributes
    ----------
    name: model name (``"gin"``, ``"gcn"``).
    config: :class:`ModelConfig` of every member.
    members: list of ``dict(model=ClusterGNN, fold=int, seed=int, sigma=float)``; ``sigma``
        is the member's residual standard deviation (lg units) on its inner validation set.
    record: :class:`ModelRecord` (level of theory, graph settings, feature names, held-out
        clusters per fold, applicability domain).
    """

    def __init__(self, name: str, config: ModelConfig, members: list[dict], record: ModelRecord):
        self.name, self.config, self.members, self.record = name, config, members, record

    @property
    def domain(self) -> Domain | None:
        """The :class:`~cluster_gnn.domain.Domain` of this ensemble, or None."""
        return self.record.domain

    def featurize(self, atoms, charge: int, multiplicity: int, features: AtomFeatures | None = None,
                  name: str | None = None):
        """The model input for one structure: a ``Data`` graph (``x`` ``[num_atoms, 14]``,
        ``edge_attr`` ``[num_edges, 10]``, ``u`` ``[1, 82]``) built the way the record says.

        ``atoms`` in Å, ``charge`` in e, ``multiplicity`` 2S+1. xTB runs at the record's
        level of theory unless ``features`` (already computed, e.g. the bundled tables) are
        given; those must be at that level and for that charge and multiplicity, else
        :class:`FeatureMismatchError`.
        """
        level = self.record.level_of_theory
        if features is None:
            features = compute_xtb_features(atoms, charge, multiplicity, level)
        elif (features.method, features.charge, features.multiplicity) != (level.label, int(charge), int(multiplicity)):
            raise FeatureMismatchError(
                f"features are {features.method} at charge {features.charge}, multiplicity "
                f"{features.multiplicity}; {self.name} expects {level.label} at charge {charge}, "
                f"multiplicity {multiplicity}")
        return build_graph(atoms, features, self.record.graph_config, name=name)

    def held_out(self, fold=None) -> list[str]:
        """Names of the clusters the members of ``fold`` never saw (empty for None)."""
        return list(self.record.held_out.get(str(fold), ())) if fold is not None else []

    def distance(self, graphs, fold=None) -> np.ndarray | None:
        """Distance of each graph from the clusters the (fold's) members were trained on,
        shape ``[num_graphs]`` (:meth:`Domain.distance`), or None without a domain."""
        domain = self.domain
        if domain is None:
            return None
        return domain.distance(np.stack([domain_vector(g) for g in graphs]), exclude=self.held_out(fold))

    def folds(self) -> list[int]:
        return sorted({m["fold"] for m in self.members})

    def predict(self, graphs, fold: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean lg(k1) and its standard deviation, each shape ``[num_graphs]``.

        With ``fold``, only the members that never saw that fold's clusters are used (the
        out-of-fold prediction); otherwise all members. The standard deviation combines the
        spread of the members, their validation residuals and, with a domain, the distance
        from the training clusters:
        ``sqrt(var(member predictions) + mean(sigma**2) + (scale * distance)**2)``.
        """
        mean, std = self.predict_model_only(graphs, fold)
        distance = self.distance(graphs, fold)
        return mean, (std if distance is None else self.domain.widen(std, distance))

    def predict_model_only(self, graphs, fold: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`predict` without the distance term:
        ``sqrt(var(member predictions) + mean(sigma**2))``."""
        members = [m for m in self.members if fold is None or m["fold"] == fold]
        if not members:
            raise ModelFileError(f"{self.name} has no members for fold {fold}")
        batch = Batch.from_data_list(list(graphs))  # built once, run by every member
        preds = np.stack([m["model"].predict_graphs(batch) for m in members])
        sigma2 = float(np.mean([m["sigma"] ** 2 for m in members]))
        return preds.mean(0), np.sqrt(preds.var(0) + sigma2)

    def member_predictions(self, graphs) -> np.ndarray:
        """Every member's prediction, shape ``[num_members, num_graphs]``."""
        batch = Batch.from_data_list(list(graphs))
        return np.stack([m["model"].predict_graphs(batch) for m in self.members])

    def save(self, path: Path | str) -> Path:
        """Write the ensemble for prediction: the auxiliary heads (training only) are left
        out and weights are stored in float16 (half the size; predictions move by about
        1e-3 lg units, measured), loaded back as float32."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)

        def stored(state):
            return {k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).clone()
                    for k, v in state.items() if not k.startswith("aux_")}

        blob = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "config": replace(self.config, num_aux=0).to_dict(),
            "record": self.record.to_dict(),
            "members": [{"fold": m["fold"], "seed": m["seed"], "sigma": float(m["sigma"]),
                         "state_dict": stored(m["model"].state_dict())}
                        for m in self.members],
        }
        with atomic_write(path, "wb") as fh:
            torch.save(blob, fh)
        return path

    @classmethod
    def load(cls, path: Path | str) -> "Ensemble":
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"model file {path} not found: run 'cluster-gnn train' first")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated or foreign file: report it, do not crash
            raise ModelFileError(f"cannot read model file {path}: {e}") from e
        if not isinstance(blob, dict) or blob.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(
                f"{path} has format version {blob.get('format_version') if isinstance(blob, dict) else '?'}, "
                f"this version of cluster-gnn reads version {FORMAT_VERSION}: retrain with 'cluster-gnn train'")
        record = ModelRecord.from_dict(blob["record"])
        record.check(f"model file {path}")
        config = ModelConfig(**blob["config"])
        widths = (config.num_node_features, config.num_edge_features, config.num_graph_features)
        listed = (len(record.node_features), len(record.edge_features), len(record.graph_features))
        if widths != listed:
            raise FeatureMismatchError(f"{path}: input widths {widths} do not match the recorded feature lists {listed}")
        members = []
        for m in blob["members"]:
            model = ClusterGNN(config)
            try:
                model.load_state_dict(m["state_dict"])
            except RuntimeError as e:
                raise ModelFileError(f"{path}: weights do not fit the saved architecture: {e}") from e
            model.eval()
            members.append({"model": model, "fold": int(m["fold"]), "seed": int(m["seed"]), "sigma": float(m["sigma"])})
        return cls(blob["name"], config, members, record)

"""The package's shape: modules stack in one-way layers that follow the data.

The imports are read from the source with :mod:`ast` (every ``import`` statement, at the
top of a module or inside a function), so a deferred import counts like any other.
A module may import only modules of lower layers: no circle, nothing that runs back up.
A new module must be given a layer here.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cluster_gnn"

#: Lowest first. Structures -> data -> xTB -> graphs -> models -> training / prediction -> reports -> CLI.
LAYERS = [
    ("config", "errors", "files"),    # settings, exceptions, atomic file writes: no project imports
    ("limits", "parallel", "scf_checkpoint", "dft_grid", "npa"),  # allowed ranges of user-controlled numbers; process pools, pid locks; SCF checkpoint files; orbitals on a DFT grid, once; natural population analysis
    ("structures",),                  # names, formulas, XYZ I/O, validation
    ("datasets",),                    # the published tables, folds, committed structures, element table
    ("spin",),                        # charge and multiplicity defaults and estimates
    ("electronic", "dft"),            # xTB single points and relaxations; DFT (PySCF) single points + NPA
    ("search", "graphs", "dft_job"),  # global-minimum search; Atoms + features -> graphs; the resumable DFT job
    ("dft_upload", "dft_isomers", "dft_agreement"),  # one structure's DFT in the background; isomer candidates (ligand starts, CHGNet); NPA vs the authors' NBO
    ("isomer_ranking",),              # the PBE ranking of the candidates as a job, and its tables
    ("domain", "splits", "baselines", "transfer"),  # applicability domain; test sets and metrics; descriptor and transfer baselines
    ("models",),                      # the GNN, the ensemble and its record
    ("attribution",),                 # per-atom Shapley values by masking, deletion fidelity
    ("consensus", "training", "explain"),
    ("predict",),
    ("results",),                     # what the app shows for one cluster, live or precomputed
    ("bundled",),                     # the precomputed table of the 216 bundled clusters
    ("evaluation", "mixtures", "descriptors", "viewer", "card", "fidelity", "explore"),  # reports; explore: the Explorer's names, correlations, CSV
    ("summary", "design"),            # the Model page's paragraph; a design from a formula (search + prediction in a worker)
    ("cli_build",),                   # the commands that build data and models
    ("cli",),
    ("__main__",),                    # python -m cluster_gnn
]
LAYER = {module: i for i, layer in enumerate(LAYERS) for module in layer}
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def project_imports(module: str) -> set[str]:
    """The ``cluster_gnn`` modules that ``module`` imports anywhere in its source."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import x
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("cluster_gnn."):
                found.add(node.module.split(".")[1])
            elif node.module == "cluster_gnn":
                found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("cluster_gnn."):
                    found.add(alias.name.split(".")[1])
    return found - {module}


GRAPH = {m: project_imports(m) for m in MODULES}


def test_every_module_has_a_layer():
    assert not set(MODULES) - set(LAYER), "give the new module a layer in tests/test_layers.py"


@pytest.mark.parametrize("module", MODULES)
def test_imports_only_run_down(module):
    upward = sorted(m for m in GRAPH[module] if LAYER[m] >= LAYER[module])
    assert not upward, f"{module} (layer {LAYER[module]}) imports {upward} from its own layer or above"


def test_the_import_graph_has_no_circle():
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for n in GRAPH[m]:
            assert state.get(n) != 1, "import circle: " + " -> ".join(path + [m, n])
            if n not in state:
                visit(n, path + [m])
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m, [])


def test_the_checker_sees_deferred_and_upward_imports(tmp_path, monkeypatch):
    """The reader must catch an import inside a function, or the layer test proves nothing."""
    fake = tmp_path / "probe.py"
    fake.write_text("def f():\n    from .predict import load_ensemble\n    from cluster_gnn.cli import main\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path)
    assert project_imports("probe") == {"predict", "cli"}


@pytest.mark.parametrize("module", MODULES + ["__init__"])
def test_no_module_over_500_lines(module):
    lines = (PACKAGE / f"{module}.py").read_text(encoding="utf-8").count("\n")
    assert lines <= 500, f"{module}.py has {lines} lines"


def test_readme_is_a_front_door():
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    assert len(readme) < 15000, f"README.md has {len(readme)} characters"

"""The app's 3D structure viewer: :class:`ase.Atoms` + per-atom values -> self-contained HTML.

:func:`viewer_html` builds the viewer with py3Dmol's view spec (:class:`py3Dmol.view`
writes the 3Dmol.js calls) and swaps py3Dmol's CDN loader for the copy of 3Dmol.js
vendored in ``cluster_gnn/static/`` (see its README), inlined into the page, so the
viewer sends no request anywhere. Atoms keep their element (Jmol/CPK) colours; a per-atom
value (an importance, a charge or a spin) is drawn on top as a translucent halo whose colour
follows a :class:`ColourScale` and whose size and opacity grow with the value
(:func:`halo_spheres`); the view is zoomed so nothing is clipped (:func:`fit_zoom`), and a
"PNG" link saves the current view. Hovering an atom shows its symbol, number, charge and
value. :func:`legend_html` draws the halo's colour bar, :func:`element_legend_html` the
element colours and :func:`atom_table` the per-atom numbers.

Units: positions in Å, charges in e; importances are whatever the explainer returns
(dimensionless, relative).
"""
from __future__ import annotations

import functools
import hashlib
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "THREEDMOL_VERSION",
    "THREEDMOL_JS",
    "ColourScale",
    "colour_scale",
    "legend_html",
    "atom_labels",
    "atom_table",
    "structure_view",
    "viewer_html",
    "halo_spheres",
    "fit_zoom",
    "element_legend_html",
    "threedmol_js",
]

#: Version of the vendored 3Dmol.js (npm ``3dmol``); py3Dmol 2.5.5 asks for the same one.
THREEDMOL_VERSION = "2.5.5"
#: The vendored ``build/3Dmol-min.js`` (BSD-3-Clause; see ``static/README.md``).
THREEDMOL_JS = Path(__file__).resolve().parent / "static" / "3Dmol-min.js"

# ColorBrewer ramps (Cynthia Brewer, Apache-2.0), seven classes, low -> high.
#: Charges: red = negative (electron-rich), white = 0, blue = positive (the ESP-map convention).
CHARGE_COLOURS = ("#b2182b", "#d6604d", "#f4a582", "#f7f7f7", "#92c5de", "#4393c3", "#2166ac")
#: Non-negative importances: pale yellow (unimportant) -> dark red (important).
IMPORTANCE_COLOURS = ("#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026")
#: Signed importances: purple = lowers the prediction, green = raises it.
SIGNED_IMPORTANCE_COLOURS = ("#762a83", "#af8dc3", "#e7d4e8", "#f7f7f7", "#d9f0d3", "#7fbf7b", "#1b7837")
#: Colour of an atom that has no value (NaN) or when no values are given.
MISSING_COLOUR = "#a0a0a0"

_SPHERE_SCALE = 0.45  # ball radius = this x ASE's covalent radius (Mo 0.69 Å, S 0.47 Å)
_STICK_RADIUS = 0.12  # Å
_MIN_SPHERE = 0.25  # Å: H (0.45 x 0.31 Å) would hide inside its sticks


def _hex_to_rgb(colour: str) -> np.ndarray:
    colour = colour.lstrip("#")
    return np.array([int(colour[i : i + 2], 16) for i in (0, 2, 4)], dtype=float)


@dataclass(frozen=True)
class ColourScale:
    """A linear colour map from ``[vmin, vmax]`` onto evenly spaced anchor colours.

    Attributes
    ----------
    label: what is coloured, with its unit, e.g. ``"Mulliken charge (e)"``.
    vmin, vmax: values mapped to the first and last anchor, in the unit of ``label``;
        values outside are clipped.
    colours: anchor colours as ``#rrggbb``, low to high (at least two).
    """

    label: str
    vmin: float
    vmax: float
    colours: tuple[str, ...]

    def __post_init__(self):
        if len(self.colours) < 2:
            raise ValueError("a colour scale needs at least two anchor colours")
        if not (math.isfinite(self.vmin) and math.isfinite(self.vmax)) or self.vmax <= self.vmin:
            raise ValueError(f"need finite vmin < vmax, got {self.vmin}, {self.vmax}")

    def __call__(self, value: float) -> str:
        """The ``#rrggbb`` colour of ``value`` (:data:`MISSING_COLOUR` for NaN or None)."""
        if value is None or not math.isfinite(float(value)):
            return MISSING_COLOUR
        t = (float(value) - self.vmin) / (self.vmax - self.vmin)
        t = min(max(t, 0.0), 1.0) * (len(self.colours) - 1)
        k = min(int(t), len(self.colours) - 2)
        rgb = (1 - (t - k)) * _hex_to_rgb(self.colours[k]) + (t - k) * _hex_to_rgb(self.colours[k + 1])
        return "#" + "".join(f"{int(round(c)):02x}" for c in rgb)

    def css_gradient(self) -> str:
        """A CSS ``linear-gradient(...)`` through the anchors, left (vmin) to right (vmax)."""
        return f"linear-gradient(to right, {', '.join(self.colours)})"


def colour_scale(values, kind: str = "charge", label: str | None = None) -> ColourScale:
    """The colour scale for per-atom ``values`` (shape ``[num_atoms]``).

    Parameters
    ----------
    values:
        Per-atom numbers; NaNs are ignored when setting the range.
    kind:
        ``"charge"``: diverging red-white-blue, symmetric about 0 e (white = neutral).
        ``"importance"``: sequential yellow-red from 0 to the largest share if no value is
        negative (anchored at 0, so shares that differ by a few per cent look alike rather
        than spanning the whole ramp), otherwise diverging purple-white-green symmetric about 0.
    label:
        Legend title; defaults to ``"Mulliken charge (e)"`` / ``"importance (share of the total)"``.
    """
    if kind not in ("charge", "importance"):
        raise ValueError(f"kind must be 'charge' or 'importance', got {kind!r}")
    arr = np.asarray(values, dtype=float).ravel()
    arr = arr[np.isfinite(arr)]
    if kind == "charge":
        half = float(np.max(np.abs(arr))) if arr.size else 0.0
        half = half if half > 1e-6 else 0.1
        return ColourScale(label or "Mulliken charge (e)", -half, half, CHARGE_COLOURS)
    label = label or "importance (share of the total)"
    if arr.size and float(arr.min()) < 0:
        half = float(np.max(np.abs(arr)))
        return ColourScale(label, -half, half, SIGNED_IMPORTANCE_COLOURS)
    hi = float(arr.max()) if arr.size else 1.0
    return ColourScale(label, 0.0, hi if hi > 1e-9 else 1.0, IMPORTANCE_COLOURS)


def legend_html(scale: ColourScale, ticks: int = 5, width_px: int = 260) -> str:
    """A small HTML colour bar for ``scale``: title, gradient, ``ticks`` evenly spaced values.

    Self-contained (inline styles, no scripts), for ``st.html``.
    """
    ticks = max(int(ticks), 2)
    values = np.linspace(scale.vmin, scale.vmax, ticks)
    # enough decimals that neighbouring ticks read differently (at least 2)
    step = (scale.vmax - scale.vmin) / (ticks - 1)
    digits = 2 if max(abs(scale.vmin), abs(scale.vmax)) >= 0.1 else 3
    digits = max(digits, int(math.ceil(-math.log10(step)))) if step > 0 else digits
    labels = "".join(f"<span>{v:+.{digits}f}</span>" if scale.vmin < 0 else f"<span>{v:.{digits}f}</span>"
                     for v in values)
    return (
        f'<div class="cluster-gnn-legend" style="font: 12px sans-serif; width: {width_px}px;">'
        f'<div style="margin-bottom: 2px;">{html.escape(scale.label)}</div>'
        f'<div style="height: 12px; border: 1px solid #888; background: {scale.css_gradient()};"></div>'
        f'<div style="display: flex; justify-content: space-between;">{labels}</div>'
        "</div>"
    )


def _clean(text: str) -> str:
    """Label text drawn on the canvas: no characters that could end the inline script."""
    return "".join(c for c in str(text) if c not in "<>&\\")


def atom_labels(atoms, charges=None, values=None, value_name: str = "importance") -> list[str]:
    """Hover text per atom: ``"Mo3  q = -0.231 e  importance = 0.412"``.

    Atoms are numbered from 1 in file order; ``charges`` in e and ``values`` (shape
    ``[num_atoms]`` each) are optional.
    """
    out = []
    for i, symbol in enumerate(atoms.get_chemical_symbols()):
        parts = [f"{symbol}{i + 1}"]
        if charges is not None:
            parts.append(f"q = {float(charges[i]):+.3f} e")
        if values is not None and math.isfinite(float(values[i])):
            parts.append(f"{value_name} = {float(values[i]):.3g}")
        out.append(_clean("  ".join(parts)))
    return out


def atom_table(atoms, features=None, importance=None):
    """Per-atom numbers for display, one row per atom (:class:`pandas.DataFrame`).

    Columns: ``atom`` (symbol and number from 1), ``element``, and when given
    ``charge (e)``, ``s``, ``p``, ``d`` (Mulliken shell populations in e, from an
    :class:`~cluster_gnn.electronic.AtomFeatures`) and ``importance``.
    """
    import pandas as pd

    symbols = atoms.get_chemical_symbols()
    table = pd.DataFrame({"atom": [f"{s}{i + 1}" for i, s in enumerate(symbols)], "element": symbols})
    if features is not None:
        table["charge (e)"] = np.asarray(features.charges, dtype=float)
        table["s"] = np.asarray(features.s_population, dtype=float)
        table["p"] = np.asarray(features.p_population, dtype=float)
        table["d"] = np.asarray(features.d_population, dtype=float)
    if importance is not None:
        table["importance"] = np.asarray(importance, dtype=float)
    return table


def _xyz_text(atoms) -> str:
    lines = [str(len(atoms)), "cluster"]
    for symbol, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.get_positions()):
        lines.append(f"{symbol} {x:.6f} {y:.6f} {z:.6f}")
    return "\n".join(lines) + "\n"


_HOVER_ON = """function(atom, viewer) {
  if (atom.label) return;
  var text = %s[atom.index];
  atom.label = viewer.addLabel(text, {position: {x: atom.x, y: atom.y, z: atom.z},
    backgroundColor: "#222222", backgroundOpacity: 0.85, fontColor: "white", fontSize: 13,
    inFront: true, showBackground: true});
}"""
_HOVER_OFF = """function(atom, viewer) {
  if (atom.label) { viewer.removeLabel(atom.label); delete atom.label; }
}"""


def structure_view(atoms, colours=None, labels=None, *, show_labels: bool = False,
                   width="100%", height: int = 420, halos=None):
    """A :class:`py3Dmol.view` of ``atoms`` as balls (0.45 x covalent radius) and sticks, one colour per atom.

    Parameters
    ----------
    atoms:
        :class:`ase.Atoms`, positions in Å. Bonds are drawn by 3Dmol.js from distances.
    colours:
        ``#rrggbb`` per atom (length ``num_atoms``); default: element (Jmol) colours.
    labels:
        Hover text per atom (see :func:`atom_labels`); default: symbol and number.
    show_labels:
        Also draw ``symbol+number`` next to every atom permanently.
    width, height:
        Size of the viewer: CSS width (``"100%"`` or pixels) and height in pixels.
    halos:
        Per atom ``(colour, radius in Å, opacity)`` of a translucent sphere drawn around
        it (see :func:`halo_spheres`), or None.

    The view is zoomed so that every ball and halo fits the frame (:func:`fit_zoom`).
    """
    import py3Dmol
    from ase.data import covalent_radii

    n = len(atoms)
    if colours is not None and len(colours) != n:
        raise ValueError(f"got {len(colours)} colours for {n} atoms")
    if labels is None:
        labels = [f"{s}{i + 1}" for i, s in enumerate(atoms.get_chemical_symbols())]
    # js= is never loaded: viewer_html defines $3Dmolpromise first, which makes py3Dmol
    # skip its loader. An empty data: URL keeps even a stray load off the network.
    view = py3Dmol.view(width=width, height=height, js="data:text/javascript,")
    view.addModel(_xyz_text(atoms), "xyz")
    radii = np.maximum(_SPHERE_SCALE * covalent_radii[atoms.get_atomic_numbers()], _MIN_SPHERE)
    for i in range(n):
        paint = {"colorscheme": "Jmol"} if colours is None else {"color": colours[i]}
        view.setStyle({"index": i}, {"sphere": {"radius": round(float(radii[i]), 3), **paint},
                                     "stick": {"radius": _STICK_RADIUS, **paint}})
    view.setViewStyle({"style": "outline", "color": "black", "width": 0.03})
    if show_labels:
        for i, (symbol, (x, y, z)) in enumerate(zip(atoms.get_chemical_symbols(), atoms.get_positions())):
            view.addLabel(f"{symbol}{i + 1}", {"position": {"x": float(x), "y": float(y), "z": float(z)},
                                               "fontSize": 11, "fontColor": "black",
                                               "backgroundColor": "white", "backgroundOpacity": 0.6,
                                               "inFront": True})
    texts = json.dumps([_clean(t) for t in labels])
    view.setHoverDuration(80)
    view.setHoverable({}, True, _HOVER_ON % texts, _HOVER_OFF)
    outer = radii.copy()
    if halos is not None:
        if len(halos) != n:
            raise ValueError(f"got {len(halos)} halos for {n} atoms")
        for (x, y, z), (colour, radius, opacity) in zip(atoms.get_positions(), halos):
            view.addSphere({"center": {"x": float(x), "y": float(y), "z": float(z)}, "radius": round(radius, 3),
                            "color": colour, "opacity": round(opacity, 3)})
        outer = np.maximum(outer, [h[1] for h in halos])
    view.zoomTo()
    view.zoom(fit_zoom(atoms.get_positions(), outer))
    return view


def fit_zoom(positions, radii, slack: float = 1.25) -> float:
    """The zoom factor after 3Dmol's ``zoomTo`` that keeps every sphere of ``radii`` (Å, shape
    ``[num_atoms]``) inside the frame. ``zoomTo`` fits the atom centres with room to spare
    (their bounding radius ``R`` fills about 0.6 of the half-height), so spheres reaching
    ``R + r`` fit when the view is zoomed by ``slack x R / (R + r)`` (at most 1; ``R`` at
    least 1 Å). Checked by eye on Mo6S3- and Mo9S3C- (docs/screenshots)."""
    positions = np.asarray(positions, dtype=float)
    spread = float(np.max(np.linalg.norm(positions - positions.mean(axis=0), axis=1))) if len(positions) else 0.0
    spread = max(spread, 1.0)
    return round(max(0.3, min(1.0, slack * spread / (spread + float(np.max(radii))))), 3)


def halo_spheres(atoms, values, scale: ColourScale) -> list[tuple[str, float, float]]:
    """Per atom ``(colour, radius Å, opacity)`` of its halo: the colour of its value on
    ``scale``; radius and opacity grow with the value's size relative to the largest
    (from 0.12 Å to 0.72 Å beyond the ball, from 0.1 to 0.5 opaque). NaN: no halo."""
    from ase.data import covalent_radii

    values = np.asarray(values, dtype=float)
    radii = np.maximum(_SPHERE_SCALE * covalent_radii[atoms.get_atomic_numbers()], _MIN_SPHERE)
    size = np.abs(values)
    top = float(np.nanmax(size)) if np.isfinite(size).any() else 0.0
    out = []
    for v, r, a in zip(values, radii, size):
        if not math.isfinite(v):
            out.append((MISSING_COLOUR, float(r), 0.0))
            continue
        t = a / top if top > 0 else 0.0
        out.append((scale(v), float(r + 0.12 + 0.6 * t), float(0.1 + 0.4 * t)))
    return out


@functools.lru_cache(maxsize=1)
def threedmol_js() -> str:
    """The vendored 3Dmol.js source (checked to be safe to inline in a ``<script>``)."""
    if not THREEDMOL_JS.is_file():
        raise FileNotFoundError(f"{THREEDMOL_JS} is missing; see cluster_gnn/static/README.md")
    source = THREEDMOL_JS.read_text(encoding="utf-8")
    if "</script" in source.lower():
        raise ValueError(f"{THREEDMOL_JS.name} contains '</script' and cannot be inlined")
    return source


def viewer_html(atoms, values=None, *, charges=None, scale: ColourScale | None = None,
                kind: str = "charge", value_name: str = "importance", show_labels: bool = False,
                height: int = 420, colour_atoms: bool = False, png_name: str | None = "cluster.png") -> str:
    """A complete HTML page with an interactive 3D view of ``atoms``, needing no network.

    Parameters
    ----------
    atoms:
        :class:`ase.Atoms`, positions in Å.
    values:
        Per-atom value shown, shape ``[num_atoms]`` (a charge or spin in e, or an
        importance): a translucent halo around each atom whose colour follows ``scale`` and
        whose size and opacity grow with the value (:func:`halo_spheres`); the atoms keep
        their element (Jmol) colours. ``None``: element colours only.
    charges:
        Mulliken charges in e, shape ``[num_atoms]``, shown on hover.
    scale:
        Colour scale; default :func:`colour_scale` ``(values, kind)``. Pass the same
        scale to :func:`legend_html`.
    kind:
        ``"charge"`` or ``"importance"``, for the default scale.
    value_name:
        Name of ``values`` on hover (when they are not the charges).
    show_labels:
        Write ``symbol+number`` next to every atom.
    height:
        Viewer height in pixels; the width fills the frame.
    colour_atoms:
        Paint the atoms themselves by value instead of drawing halos (the older look).
    png_name:
        File name of the "PNG" download link drawn over the view (3Dmol's ``pngURI()``); None: no link.

    Returns
    -------
    str
        ``<!DOCTYPE html>`` page: the vendored 3Dmol.js inline, then py3Dmol's viewer code.
    """
    n = len(atoms)
    for what, arr in (("values", values), ("charges", charges)):
        if arr is not None and len(arr) != n:
            raise ValueError(f"got {len(arr)} {what} for {n} atoms")
    colours = halos = None
    if values is not None:
        scale = scale or colour_scale(values, kind)
        if colour_atoms:
            colours = [scale(v) for v in np.asarray(values, dtype=float)]
        else:
            halos = halo_spheres(atoms, values, scale)
    hover_values = None if (values is None or kind == "charge") else values
    labels = atom_labels(atoms, charges if charges is not None else (values if kind == "charge" else None),
                         hover_values, value_name)
    view = structure_view(atoms, colours, labels, show_labels=show_labels, width="100%", height=int(height),
                          halos=halos)
    body = view.write_html()
    # py3Dmol names its elements after the clock; a name from the content instead keeps the
    # page byte-identical across reruns, so the browser does not reload an unchanged viewer.
    stable = "v" + hashlib.sha1(body.replace(view.uniqueid, "").encode()).hexdigest()[:16]
    body = body.replace(view.uniqueid, stable)
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        "<style>html,body{margin:0;padding:0;overflow:hidden;background:white;}"
        "#png{position:absolute;top:6px;right:8px;z-index:10;font:12px sans-serif;padding:2px 8px;"
        "border:1px solid #999;border-radius:4px;background:rgba(255,255,255,.85);color:#222;"
        "text-decoration:none;}</style></head><body>"
        f"<script>/* 3Dmol.js {THREEDMOL_VERSION}, BSD-3-Clause, vendored in cluster_gnn/static */\n"
        f"{threedmol_js()}\n</script>\n"
        "<script>var $3Dmolpromise = Promise.resolve();</script>\n"
        f"{body}{_png_link(stable, png_name)}</body></html>"
    )


def _png_link(stable: str, png_name: str | None) -> str:
    """A download link that saves the current view as PNG (3Dmol's ``pngURI()``)."""
    if not png_name:
        return ""
    name = html.escape("".join(c for c in png_name if c.isalnum() or c in "-_.") or "cluster.png")
    return (f'<a id="png" href="#" download="{name}" title="Save this view as a PNG image" '
            f'onclick="if (viewer_{stable}) {{ this.href = viewer_{stable}.pngURI(); }}">PNG</a>')


def element_legend_html(atoms) -> str:
    """Swatches of the element (Jmol) colours of the elements in ``atoms``, for ``st.html``."""
    from ase.data import atomic_numbers
    from ase.data.colors import jmol_colors

    seen = list(dict.fromkeys(atoms.get_chemical_symbols()))
    swatches = "".join(
        '<span style="display:inline-flex;align-items:center;margin-right:10px;">'
        f'<span style="width:12px;height:12px;border-radius:6px;border:1px solid #555;margin-right:4px;'
        f'background:#{"".join(f"{int(round(255 * c)):02x}" for c in jmol_colors[atomic_numbers[s]])};"></span>'
        f"{html.escape(s)}</span>" for s in seen)
    return f'<div class="cluster-gnn-elements" style="font: 12px sans-serif;">Atoms (element colours): {swatches}</div>'

"""Property-based fuzzing of the structure intake: whatever the bytes, read_cluster either
returns a validated cluster or raises StructureError with a one-line message."""
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_gnn.errors import StructureError
from cluster_gnn.structures import MIN_DISTANCE, fragments, read_cluster

SYMBOLS = ["Mo", "S", "Fe", "C", "H", "V", "Ta", "Rh", "Co", "N", "U", "Xx", "mo", "42", "0", "", "Q"]
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
    st.floats(min_value=-6, max_value=6).map(lambda v: f"{v:.4f}"),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "zero", "", "1,5", "0x10", "--1"]),
)
ATOM_LINE = st.builds(lambda s, xs: " ".join([s] + xs), st.sampled_from(SYMBOLS), st.lists(NUMBERS, min_size=0, max_size=5))
COMMENT = st.one_of(st.text(max_size=40), st.sampled_from(["charge=-1 multiplicity=2", "charge=abc", 'Properties=species:S:1:pos:R:3',
                                                          "charge -1", "multiplicity=2.5", 'a="unclosed']))


@st.composite
def xyz_texts(draw):
    lines = draw(st.lists(ATOM_LINE, min_size=0, max_size=12))
    count = draw(st.one_of(st.just(str(len(lines))), st.integers(-2, 200).map(str), st.sampled_from(["", "x", "3.0", "1e3"])))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join([count, draw(COMMENT)] + lines) + draw(st.sampled_from(["", newline, newline * 3]))
    return text.encode("utf-8", errors="surrogatepass") if draw(st.booleans()) else text.encode("latin-1", errors="replace")


def _check(data: bytes):
    try:
        atoms = read_cluster(data)
    except StructureError as err:
        message = str(err)
        assert message and "\n" not in message and "Traceback" not in message
        return
    # accepted: it must really be one sane cluster
    pos = atoms.get_positions()
    assert len(atoms) >= 1 and np.all(np.isfinite(pos))
    if len(atoms) > 1:
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(len(atoms)) * 99
        assert d.min() >= MIN_DISTANCE
        assert len(fragments(atoms)) == 1
    for key in ("charge", "multiplicity"):
        if key in atoms.info:
            assert isinstance(atoms.info[key], int)


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xyz_texts())
def test_structured_garbage_never_crashes(data):
    _check(data)


@settings(max_examples=800, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data):
    _check(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3)), min_size=1, max_size=8))
def test_valid_looking_clusters_are_judged_by_geometry(coords):
    text = f"{len(coords)}\n\n" + "\n".join(f"Mo {x} {y} {z}" for x, y, z in coords) + "\n"
    _check(text.encode())
    if all(math.isfinite(v) for c in coords for v in c):
        try:
            read_cluster(text.encode())
        except StructureError as err:
            assert err.reason in ("overlap", "fragments")

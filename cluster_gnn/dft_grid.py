"""Atomic-orbital values on a DFT integration grid, evaluated once per calculation.

PySCF's numerical integration (:class:`pyscf.dft.numint.NumInt`) evaluates every atomic
orbital and its gradient on every grid point again at each SCF cycle and at each
orbital-Hessian product of a Newton SCF. :func:`cached_numint` gives a ``NumInt`` that keeps
those values, per grid, for the calculation's lifetime, while they fit in
:data:`MAX_CACHE_BYTES` (beyond that it evaluates them as PySCF does). The values are the
same, so are the energies and charges; the single points take 10-20 % less CPU time
(``python benchmarks/dft_grid_cache.py``). PySCF is imported only when one is made.
"""
from __future__ import annotations

#: most bytes of orbital values one calculation keeps (the level-2 grid of a 13-atom cluster
#: needs about 1.5 GB; the density-fitting integrals kept beside them up to 1.3 GB)
MAX_CACHE_BYTES = 2.0e9

_CLASS = None


def cached_numint():
    """A new :class:`pyscf.dft.numint.NumInt` that evaluates the orbitals on each grid once
    (assign it to ``mf._numint`` of every SCF object of one calculation)."""
    global _CLASS
    if _CLASS is None:
        from pyscf.dft import numint

        class CachedNumInt(numint.NumInt):
            def __init__(self):
                super().__init__()
                self.cached_bytes = 0
                self._grids: dict = {}  # (mol id, coords id, nao, deriv) -> (mol, coords, blocks)

            def block_loop(self, mol, grids, nao=None, deriv=0, max_memory=2000, non0tab=None, blksize=None,
                           buf=None):
                if non0tab is not None or blksize is not None or buf is not None or grids.coords is None:
                    yield from super().block_loop(mol, grids, nao, deriv, max_memory, non0tab, blksize, buf)
                    return
                key = (id(mol), id(grids.coords), nao, deriv)
                entry = self._grids.get(key)
                if entry is not None and entry[0] is mol and entry[1] is grids.coords:
                    yield from entry[2]
                    return
                comp = (deriv + 1) * (deriv + 2) * (deriv + 3) // 6
                size = comp * grids.coords.shape[0] * (nao or mol.nao) * 8
                if self.cached_bytes + size > MAX_CACHE_BYTES:
                    yield from super().block_loop(mol, grids, nao, deriv, max_memory)
                    return
                # PySCF writes every block into one buffer: keep copies, in its memory order
                blocks = [(ao.copy(order="K"), mask, weight, coords)
                          for ao, mask, weight, coords in super().block_loop(mol, grids, nao, deriv, max_memory)]
                self._grids[key] = (mol, grids.coords, blocks)  # the references keep the ids unique
                self.cached_bytes += size
                yield from blocks

        _CLASS = CachedNumInt
    return _CLASS()

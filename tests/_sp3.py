"""A small SP3-c/SP3-d reader for the tests' truth orbits (IGS precise orbits: positions only).

No maintained SP3 reader is installed in the project's environment (checked: no ``sp3``,
``georinex`` or ``gnss`` package in .venv), and the tests need only the position records, so
this is a short test-side parser of the published format (IGS, "The Extended Standard Product
3 Orbit Format (SP3-c)", Hilla 2002): the ``%c`` line's time system, the ``*`` epoch lines and
the ``P`` position lines (km, in the file's terrestrial frame; a 0.000000 coordinate means
"bad or absent" and is dropped). Velocities (``V`` lines), clocks and accuracy codes are not
read. Times are returned as Skyfield ``Time`` objects built in the file's own time system, so
GPS time (TAI - 19 s) is never mistaken for UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Offset of each SP3 time system to TAI, seconds (TAI = system + offset). UTC is handled
#: through Skyfield's leap-second table instead.
_TO_TAI_S = {"GPS": 19.0, "GAL": 19.0, "TAI": 0.0}


@dataclass
class Sp3:
    time_system: str
    frame: str                 # coordinate system label of the header, e.g. IGb14
    epochs: list               # calendar fields (Y, M, D, h, m, s) in time_system
    positions: dict            # satellite id ("G16") -> (n_epochs, 3) km, nan where absent

    def times(self, ts):
        """The epochs as a Skyfield ``Time`` array (``ts``: a Skyfield timescale)."""
        y, mo, d, h, mi, s = (np.array(c) for c in zip(*self.epochs))
        if self.time_system == "UTC" or self.time_system == "GLO":   # GLONASS time = UTC(SU)
            return ts.utc(y, mo, d, h, mi, s)
        return ts.tai(y, mo, d, h, mi, s + _TO_TAI_S[self.time_system])


def read_sp3(path) -> Sp3:
    lines = Path(path).read_text(encoding="ascii", errors="replace").splitlines()
    if not lines or not lines[0].startswith("#") or lines[0][1] not in "cd":
        raise ValueError(f"{path}: not an SP3-c/d file (first line {lines[0][:10]!r})")
    frame = lines[0][46:51].strip()
    time_system = None
    epochs: list = []
    rows: dict[str, dict[int, tuple[float, float, float]]] = {}
    for line in lines[1:]:
        if line.startswith("%c") and time_system is None:
            time_system = line[9:12].strip()
        elif line.startswith("* "):
            f = line[2:].split()
            epochs.append((int(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[4]),
                           float(f[5])))
        elif line.startswith("P") and epochs:
            sat = line[1:4].replace(" ", "0")
            xyz = tuple(float(line[4 + 14 * k: 18 + 14 * k]) for k in range(3))
            if all(v != 0.0 for v in xyz):
                rows.setdefault(sat, {})[len(epochs) - 1] = xyz
        elif line.startswith("EOF"):
            break
    if time_system not in (*_TO_TAI_S, "UTC", "GLO"):
        raise ValueError(f"{path}: time system {time_system!r} is not handled")
    positions = {}
    for sat, by_epoch in rows.items():
        arr = np.full((len(epochs), 3), np.nan)
        for k, xyz in by_epoch.items():
            arr[k] = xyz
        positions[sat] = arr
    return Sp3(time_system, frame, epochs, positions)


def lagrange(t_nodes: np.ndarray, y_nodes: np.ndarray, t: np.ndarray, order: int = 10
             ) -> np.ndarray:
    """``y`` at ``t`` by Lagrange interpolation over the ``order`` nodes nearest each time
    (the usual way to interpolate a 15-min SP3: 10 nodes give mm-level GNSS positions).
    ``t_nodes``: (n,) seconds; ``y_nodes``: (n, k) without nan; ``t``: (m,) seconds inside
    the nodes' span (outside it raises, never extrapolates)."""
    t_nodes = np.asarray(t_nodes, float)
    t = np.atleast_1d(np.asarray(t, float))
    if t.min() < t_nodes[0] or t.max() > t_nodes[-1]:
        raise ValueError("time outside the SP3's span: it does not extrapolate")
    out = np.empty((t.size, y_nodes.shape[1]))
    for i, ti in enumerate(t):
        k = int(np.clip(np.searchsorted(t_nodes, ti) - order // 2, 0, len(t_nodes) - order))
        tn, yn = t_nodes[k:k + order], y_nodes[k:k + order]
        w = np.ones(order)
        for j in range(order):
            others = np.delete(np.arange(order), j)
            w[j] = np.prod((ti - tn[others]) / (tn[j] - tn[others]))
        out[i] = w @ yn
    return out

"""Probability of collision (Pc), vectorized over many conjunctions.

Short-encounter (2-D) methods, as NASA CARA and Orekit compute them:

``foster``
    Foster's 2-D Pc: the combined position covariance and the miss vector are projected onto
    the encounter plane (normal to the relative velocity) and the Gaussian is integrated over
    the hard-body circle. CARA's ``Pc2D_Foster`` / ``PcCircle``. Integrated to a relative
    accuracy of about 1e-13 (see :func:`pc_circle`), not to the 1e-6 of CARA's adaptive fallback.
``foster-square``, ``foster-square-equal-area``
    CARA's square variants (``Pc2D_Foster`` with ``HBRType`` ``'square'`` and
    ``'squareEquArea'``): the square of half-width HBR (or ``sqrt(pi)/2 * HBR``, the square of
    the circle's area) with sides along the encounter frame's axes, centred on the miss vector.
``chan``
    Chan's (1997) series, with the number of terms Chan recommends (as Orekit's ``Chan1997``).
``alfano2005``
    Alfano's (2005) Simpson-rule series, as Orekit's ``Alfano2005`` implements it.
:func:`max_pc`
    For element sets that carry no covariance (TLE/GP): the largest Pc over the size of an
    isotropic combined covariance (Alfano 2005, "Relating position uncertainty to maximum
    conjunction probability"), with the standard deviation at which it occurs (SOCRATES's
    "dilution threshold"). Clearly a maximum, never a Pc.

Non-positive-definite covariances are handled as CARA's ``PcCircle`` does: the eigenvalues of
the 2x2 encounter-plane covariance below ``(1e-4 * HBR)**2`` are clipped to that value, and the
result says so in its ``flags``. Hot paths return per-event flag bits (python-sgp4's style),
never exceptions: see :data:`FLAG_NAMES`.

Units: any consistent length unit (positions, HBR, covariance in that unit squared); the
probability is unit-free. ``pc_from_states`` takes positions in one inertial frame.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass

import numpy as np
from scipy import integrate, special

try:  # numba is the sanctioned tool for hot loops; without it the numpy path gives the same Pc
    import numba as _numba
except ImportError:  # pragma: no cover - exercised where numba is not installed
    _numba = None

__all__ = ["METHODS", "FLAG_NAMES", "PcResult", "pc_from_states", "pc_from_cdm", "pc_circle",
           "pc_encounter_plane", "pc_chan", "pc_alfano2005", "pc_rectangle", "max_pc",
           "max_pc_from_miss", "max_pc_ellipse", "max_pc_socrates", "socrates_aspect_ratio",
           "SOCRATES_RIC_SIGMAS_KM", "encounter_plane", "flag_names", "rtn_to_inertial",
           "load_cara_hbr", "combined_hbr", "INERTIAL_FRAMES"]

METHODS = ("foster", "foster-square", "foster-square-equal-area", "chan", "alfano2005")

#: Flag bits of :attr:`PcResult.flags`.
NPD_REMEDIATED = 1        #: an encounter-plane eigenvalue was below the clip level and was raised
INVALID_COVARIANCE = 2    #: both encounter-plane eigenvalues non-positive (or not finite): Pc NaN
ZERO_RELATIVE_VELOCITY = 4  #: no encounter plane: Pc NaN
ZERO_MISS = 8             #: miss vector (almost) zero; the plane's orientation was taken from
#                           the sum of the positions, as CARA does
QUADRATURE_FALLBACK = 16  #: the fast quadrature did not converge; adaptive quadrature was used
INVALID_INPUT = 32        #: non-finite state or negative HBR: Pc NaN
FLAG_NAMES = {
    NPD_REMEDIATED: "npd-remediated",
    INVALID_COVARIANCE: "invalid-covariance",
    ZERO_RELATIVE_VELOCITY: "zero-relative-velocity",
    ZERO_MISS: "zero-miss",
    QUADRATURE_FALLBACK: "quadrature-fallback",
    INVALID_INPUT: "invalid-input",
}

#: CARA's eigenvalue clipping factor (PcCircle.m, Pc2D_Foster.m): clip at (Fclip * HBR)**2.
FCLIP = 1e-4

_SQRT2 = math.sqrt(2.0)
_RTOL = 1e-13
_N0, _NMAX = 8, 1024


def flag_names(flags: int) -> list[str]:
    """The names of the bits set in one ``flags`` value."""
    return [name for bit, name in FLAG_NAMES.items() if int(flags) & bit]


@dataclass(frozen=True)
class PcResult:
    """Pc of ``n`` conjunctions and how it was obtained.

    ``pc``: shape ``(n,)``; NaN where it cannot be computed (see ``flags``).
    ``flags``: ``uint8`` bit flags per event (:data:`FLAG_NAMES`).
    ``xm``, ``zm``, ``sx``, ``sz``: the miss vector and the standard deviations in the
    principal axes of the (remediated) encounter-plane covariance, ``sx >= sz``, in the length
    unit of the input. ``miss``: miss distance in the encounter plane (the miss at the linear
    TCA).
    """

    pc: np.ndarray
    method: str
    flags: np.ndarray
    xm: np.ndarray
    zm: np.ndarray
    sx: np.ndarray
    sz: np.ndarray
    miss: np.ndarray


# ---------------------------------------------------------------------------------------------
# The circle integral
# ---------------------------------------------------------------------------------------------

def _erf_dif(d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """``erf(d1) - erf(d2)`` for ``d1 >= d2``, without cancellation in the upper tail."""
    out = special.erf(d1) - special.erf(d2)
    tail = d2 > 0.5
    if tail.any():
        out[tail] = special.erfc(d2[tail]) - special.erfc(d1[tail])
    return out


def _erf_dif_any(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """``erf(hi) - erf(lo)`` for ``hi >= lo``, accurate in both tails (odd symmetry)."""
    flip = hi + lo < 0
    if not flip.any():
        return _erf_dif(hi, lo)
    return np.where(flip, _erf_dif(np.where(flip, -lo, hi), np.where(flip, -hi, lo)),
                    _erf_dif(hi, lo))


def _circle_terms(xm, zm, dx, dz, R, cos_t, sin_t):
    """The integrand ``exp(-x^2/dx^2) * [erf((zm+h)/dz) - erf((zm-h)/dz)] * sin(t)`` at
    ``x = xm + R cos t``, ``h = R sin t``; events along axis 0, angles along axis 1."""
    x = xm[:, None] + R[:, None] * cos_t
    h = R[:, None] * sin_t
    zd = (zm / dz)[:, None]
    hd = h / dz[:, None]
    g = np.exp(-np.square(x / dx[:, None]))
    return g * _erf_dif(zd + hd, zd - hd) * sin_t


def pc_circle(xm, zm, sx, sz, hbr, *, rtol: float = _RTOL, return_flags: bool = False):
    """Pc over a circle of radius ``hbr`` centred at ``(xm, zm)`` for a zero-mean Gaussian with
    independent standard deviations ``sx`` along x and ``sz`` along z (arrays broadcast).

    The x-integral is taken along the axis of the larger sigma with the other done exactly by
    error functions (Alfano 2005, CARA's PcCircle); with ``x = xm + hbr cos t`` the integrand
    is smooth and periodic in ``t``, so the trapezoidal rule converges geometrically: nodes are
    doubled from 8 until two estimates agree to ``rtol``. Events that need more than 1024 nodes
    (HBR very large against the smaller sigma) are integrated with ``scipy.integrate.quad`` and
    flagged ``QUADRATURE_FALLBACK``. Returns ``pc`` (and the flags when ``return_flags``).
    """
    xm, zm, sx, sz, R = np.broadcast_arrays(*(np.asarray(a, dtype=float)
                                              for a in (xm, zm, sx, sz, hbr)))
    shape = xm.shape
    xm, zm, sx, sz, R = (np.abs(a).ravel().copy() for a in (xm, zm, sx, sz, R))
    # Outer integral along the larger sigma.
    swap = sz > sx
    xm[swap], zm[swap] = zm[swap].copy(), xm[swap].copy()
    sx[swap], sz[swap] = sz[swap].copy(), sx[swap].copy()
    n = xm.size
    pc = np.zeros(n)
    flags = np.zeros(n, dtype=np.uint8)
    bad = ~(np.isfinite(xm) & np.isfinite(zm) & np.isfinite(sx) & np.isfinite(sz)
            & np.isfinite(R)) | ~(sz > 0)
    pc[bad] = np.nan
    flags[bad] |= INVALID_INPUT
    live = np.flatnonzero(~bad & (R > 0))
    if live.size:
        pc[live], fb = _circle_live(xm[live], zm[live], sx[live], sz[live], R[live], rtol)
        flags[live[fb]] |= QUADRATURE_FALLBACK
    pc = np.minimum(pc, 1.0).reshape(shape)
    return (pc, flags.reshape(shape)) if return_flags else pc


def _circle_live(xm, zm, sx, sz, R, rtol):
    if _numba is not None and BACKEND["name"] == "numba":
        integral, conv = _circle_numba(xm, zm, sx, sz, R, rtol)
        idx = np.flatnonzero(~conv)
        return _circle_finish(integral, idx, xm, zm, sx, sz, R)
    dx, dz = _SQRT2 * sx, _SQRT2 * sz
    n = xm.size
    integral = np.empty(n)
    idx = np.arange(n)
    N = _N0
    t = np.arange(1, N) * (np.pi / N)
    S = _circle_terms(xm, zm, dx, dz, R, np.cos(t), np.sin(t)).sum(axis=1)
    prev = S * (np.pi / N)
    a_xm, a_zm, a_dx, a_dz, a_R = xm, zm, dx, dz, R
    while idx.size and N < _NMAX:
        t = (np.arange(N) + 0.5) * (np.pi / N)
        S = S + _circle_terms(a_xm, a_zm, a_dx, a_dz, a_R, np.cos(t), np.sin(t)).sum(axis=1)
        N *= 2
        cur = S * (np.pi / N)
        done = np.abs(cur - prev) <= rtol * np.abs(cur)
        integral[idx[done]] = cur[done]
        keep = ~done
        idx, S, prev = idx[keep], S[keep], cur[keep]
        a_xm, a_zm, a_dx, a_dz, a_R = a_xm[keep], a_zm[keep], a_dx[keep], a_dz[keep], a_R[keep]
    return _circle_finish(integral, idx, xm, zm, sx, sz, R)


def _circle_finish(integral, idx, xm, zm, sx, sz, R):
    """Scale the trapezoid integrals to Pc and integrate the unconverged ``idx`` adaptively."""
    n = xm.size
    fallback = np.zeros(n, dtype=bool)
    for k in idx:
        integral[k] = _circle_quad(xm[k], zm[k], sx[k], sz[k], R[k])
        fallback[k] = True
    pc = integral * R / (2.0 * math.sqrt(2.0 * math.pi) * sx)
    if idx.size:
        pc[idx] = integral[idx]
    return pc, fallback


#: Which implementation of the circle quadrature runs: "numba" when numba is importable,
#: else "numpy". Both compute the same sums (tests compare them); set it to force one.
BACKEND = {"name": "numba" if _numba is not None else "numpy"}


# The numba kernel is defined at module level, not in a closure: numba's on-disk cache keys a
# closure on its captured values, which differ per process, so a closure was compiled again
# (about 1.5 s) by every process and left one more cache file each time.
_COS_TAB = np.cos(np.arange(_NMAX + 1) * (np.pi / _NMAX))
_SIN_TAB = np.sin(np.arange(_NMAX + 1) * (np.pi / _NMAX))


def _term(xm, zm, dx, dz, R, c, s):
    x = (xm + R * c) / dx
    hd = R * s / dz
    zd = zm / dz
    d1 = zd + hd
    d2 = zd - hd
    if d2 > 0.5:
        e = math.erfc(d2) - math.erfc(d1)
    else:
        e = math.erf(d1) - math.erf(d2)
    return math.exp(-x * x) * e * s


if _numba is not None:
    _term = _numba.njit(cache=True, inline="always")(_term)
    _prange = _numba.prange
else:  # pragma: no cover - the numpy path is used instead
    _prange = range


def _kernel(xm, zm, dx, dz, R, rtol, cos_tab, sin_tab, out, conv):
    nmax = cos_tab.size - 1
    for i in _prange(xm.size):
        a, b, c, d, r = xm[i], zm[i], dx[i], dz[i], R[i]
        N = 8
        stride = nmax // N
        S = 0.0
        for k in range(1, N):
            S += _term(a, b, c, d, r, cos_tab[k * stride], sin_tab[k * stride])
        prev = S * math.pi / N
        cur = prev
        ok = False
        while N < nmax:
            stride = nmax // (2 * N)
            for j in range(N):
                k = (2 * j + 1) * stride
                S += _term(a, b, c, d, r, cos_tab[k], sin_tab[k])
            N *= 2
            cur = S * math.pi / N
            if abs(cur - prev) <= rtol * abs(cur):
                ok = True
                break
            prev = cur
        out[i] = cur
        conv[i] = ok


if _numba is not None:
    _kernel = _numba.njit(parallel=True, cache=True)(_kernel)


def _circle_numba(xm, zm, sx, sz, R, rtol):
    out = np.empty(xm.size)
    conv = np.empty(xm.size, dtype=np.bool_)
    _kernel(np.ascontiguousarray(xm), np.ascontiguousarray(zm),
            np.ascontiguousarray(_SQRT2 * sx), np.ascontiguousarray(_SQRT2 * sz),
            np.ascontiguousarray(R), float(rtol), _COS_TAB, _SIN_TAB, out, conv)
    return out, conv


def _circle_quad(xm, zm, sx, sz, R) -> float:
    """Pc of one event by adaptive quadrature, outer variable along the *smaller* sigma ``sz``
    (a narrow Gaussian), clipped to +-9 sigma where that window lies inside the circle's
    span; the inner integral along ``sx`` is exact (error functions)."""
    lo, hi = zm - R, zm + R
    w = 9.0 * sz
    if lo < -w < hi:
        lo = -w
    if lo < w < hi:
        hi = w
    dz, dx = _SQRT2 * sz, _SQRT2 * sx

    def f(z):
        h = math.sqrt(max(R * R - (z - zm) ** 2, 0.0))
        d1, d2 = (xm + h) / dx, (xm - h) / dx
        e = (math.erfc(d2) - math.erfc(d1)) if d2 > 0.5 else (math.erf(d1) - math.erf(d2))
        return math.exp(-(z / dz) ** 2) * e

    val, _ = integrate.quad(f, lo, hi, epsabs=0.0, epsrel=1e-12, limit=500,
                            points=[p for p in (-sz, 0.0, sz) if lo < p < hi] or None)
    return val / (2.0 * math.sqrt(2.0 * math.pi) * sz)


# ---------------------------------------------------------------------------------------------
# Other encounter-plane methods
# ---------------------------------------------------------------------------------------------

def pc_chan(xm, zm, sx, sz, hbr):
    """Chan's (1997) series for the Pc of a circle (Chan 2008, "Spacecraft Collision
    Probability", ch. 5), with Chan's recommended number of terms M (3, 10, 20 or 60 from
    ``u = R^2/(sx sz)`` and ``v = xm^2/sx^2 + zm^2/sz^2``), as Orekit's ``Chan1997``.
    Treats the ellipse as the circle of equal area, so it is an approximation of Foster's Pc."""
    xm, zm, sx, sz, R = np.broadcast_arrays(*(np.asarray(a, dtype=float)
                                              for a in (xm, zm, sx, sz, hbr)))
    u = R * R / (sx * sz)
    v = (xm / sx) ** 2 + (zm / sz) ** 2
    M = np.where((u <= 0.01) | (v <= 1), 3,
                 np.where((u <= 1) | (v <= 9), 10,
                          np.where((u <= 25) | (v <= 25), 20, 60)))
    ev, euv = np.exp(-v / 2), np.exp(-(u + v) / 2)
    t = np.ones_like(u)
    s = np.ones_like(u)
    ssum = np.ones_like(u)
    value = ev * t - euv * t * ssum
    for i in range(1, int(M.max(initial=3))):
        t = t * (v / 2) / i
        s = s * (u / 2) / i
        ssum = ssum + s
        value = value + np.where(i < M, ev * t - euv * t * ssum, 0.0)
    return value


def pc_alfano2005(xm, zm, sx, sz, hbr):
    """Alfano's (2005) Simpson-rule series ("A numerical implementation of spherical object
    collision probability", J. Astronaut. Sci. 53(1)) as Orekit's ``Alfano2005`` implements it:
    integration along x (sigma ``sx``), M = clamp(int(5 R / min(sx, sz, |miss|)), 10, 100000)
    Simpson intervals per half circle. Kept for comparison with Orekit; :func:`pc_circle` is
    the accurate one."""
    xm, zm, sx, sz, R = (np.atleast_1d(a).astype(float) for a in np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (xm, zm, sx, sz, hbr))))
    shape = np.broadcast_shapes(*(np.shape(a) for a in (xm, zm, sx, sz, R)))
    xm, zm, sx, sz, R = (a.ravel() for a in (xm, zm, sx, sz, R))
    with np.errstate(divide="ignore"):
        Mf = 5 * R / np.minimum(np.minimum(sx, sz), np.minimum(sx, np.hypot(xm, zm)))
    M = np.clip(np.nan_to_num(Mf, posinf=1e9).astype(np.int64), 10, 100000)
    out = np.empty(xm.size)
    ry = _SQRT2 * sz
    for m in np.unique(M):
        sel = np.flatnonzero(M == m)
        x_m, y_m, s_x, r_y, rr = xm[sel], zm[sel], sx[sel], ry[sel], R[sel]
        step = rr / (2 * m)

        def rec(x):
            h = np.sqrt(np.maximum(rr[:, None] ** 2 - x * x, 0.0))
            two_sx2 = 2 * s_x[:, None] ** 2
            return ((special.erf((-y_m[:, None] + h) / r_y[:, None])
                     - special.erf((-y_m[:, None] - h) / r_y[:, None]))
                    * (np.exp(-(x - x_m[:, None]) ** 2 / two_sx2)
                       + np.exp(-(x + x_m[:, None]) ** 2 / two_sx2)))

        x0 = (0.015 * step - rr)[:, None]
        m0 = 2 * rec(x0)[:, 0]
        i_even = np.arange(1, m)[None, :]
        even = rec(2 * i_even * step[:, None] - rr[:, None]).sum(axis=1) if m > 1 else 0.0
        other = np.exp(-x_m ** 2 / (2 * s_x ** 2)) * (
            special.erf((-y_m + rr) / r_y) - special.erf((-y_m - rr) / r_y))
        i_odd = np.arange(1, m + 1)[None, :]
        odd = rec((2 * i_odd - 1) * step[:, None] - rr[:, None]).sum(axis=1)
        out[sel] = step / (3 * s_x * math.sqrt(8 * math.pi)) * (m0 + 2 * (even + other) + 4 * odd)
    return out.reshape(shape)


def pc_rectangle(x0, z0, cov_xx, cov_xz, cov_zz, half_x, half_z, *, rtol: float = _RTOL):
    """Probability that a zero-mean Gaussian with 2x2 covariance ``[[cov_xx, cov_xz],
    [cov_xz, cov_zz]]`` falls in the axis-aligned rectangle centred at ``(x0, z0)`` with
    half-widths ``half_x``, ``half_z`` (CARA's square hard-body regions). The z-integral is
    exact (conditional normal); the x-integral uses the same doubling trapezoidal rule in
    ``x = x0 + half_x cos t`` as :func:`pc_circle`."""
    arrs = np.broadcast_arrays(*(np.asarray(a, dtype=float)
                                 for a in (x0, z0, cov_xx, cov_xz, cov_zz, half_x, half_z)))
    shape = arrs[0].shape
    x0, z0, cxx, cxz, czz, hx, hz = (a.ravel() for a in arrs)
    slope = cxz / cxx
    cond_sd = np.sqrt(np.maximum(czz - cxz * slope, 0.0))
    dx, dzc = _SQRT2 * np.sqrt(cxx), _SQRT2 * cond_sd

    def terms(ix, cos_t, sin_t):
        x = x0[ix, None] + hx[ix, None] * cos_t
        mu = slope[ix, None] * x
        a = (z0[ix, None] + hz[ix, None] - mu) / dzc[ix, None]
        b = (z0[ix, None] - hz[ix, None] - mu) / dzc[ix, None]
        e = _erf_dif_any(np.maximum(a, b), np.minimum(a, b))
        return np.exp(-np.square(x / dx[ix, None])) * e * sin_t

    n = x0.size
    out = np.empty(n)
    idx = np.arange(n)
    N = _N0
    t = np.arange(1, N) * (np.pi / N)
    S = terms(idx, np.cos(t), np.sin(t)).sum(axis=1)
    prev = S * (np.pi / N)
    while idx.size:
        t = (np.arange(N) + 0.5) * (np.pi / N)
        S = S + terms(idx, np.cos(t), np.sin(t)).sum(axis=1)
        N *= 2
        cur = S * (np.pi / N)
        done = (np.abs(cur - prev) <= rtol * np.abs(cur)) | (N >= 1 << 16)
        out[idx[done]] = cur[done]
        idx, S, prev = idx[~done], S[~done], cur[~done]
    return (out * hx / (2.0 * math.sqrt(2.0 * math.pi) * np.sqrt(cxx))).reshape(shape)


def pc_encounter_plane(xm, zm, sx, sz, hbr, method: str = "foster"):
    """Pc from encounter-plane quantities (the form of Orekit's 2-D methods): miss ``(xm, zm)``
    in the principal axes of the combined covariance, sigmas ``sx``, ``sz`` along them, hard-body
    radius ``hbr``. ``method``: one of :data:`METHODS` (the square variants here are aligned
    with these principal axes)."""
    if method == "foster":
        return pc_circle(xm, zm, sx, sz, hbr)
    if method == "chan":
        return pc_chan(xm, zm, sx, sz, hbr)
    if method == "alfano2005":
        return pc_alfano2005(xm, zm, sx, sz, hbr)
    if method in ("foster-square", "foster-square-equal-area"):
        half = np.asarray(hbr, float) * (1.0 if method == "foster-square"
                                         else math.sqrt(math.pi) / 2)
        sx = np.asarray(sx, float)
        sz = np.asarray(sz, float)
        return pc_rectangle(xm, zm, sx * sx, 0.0 * sx, sz * sz, half, half)
    raise ValueError(f"unknown Pc method {method!r}; expected one of {', '.join(METHODS)}")


# ---------------------------------------------------------------------------------------------
# From states and covariances
# ---------------------------------------------------------------------------------------------

def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def encounter_plane(r1, v1, cov1, r2, v2, cov2, hbr):
    """Project two states and their covariances onto the encounter plane, as CARA's PcCircle.

    ``r*``, ``v*``: ``(n, 3)`` (or ``(3,)``) in one inertial frame; ``cov*``: ``(n, 3, 3)`` or
    ``(n, 6, 6)`` (only the position block is used), same length unit squared; ``hbr``: scalar
    or ``(n,)``. The miss vector is the component of ``r1 - r2`` normal to the relative
    velocity, which is the miss at the linear-motion TCA (CARA's FindNearbyCA adjustment).

    Returns ``(miss, (a_xx, a_xz, a_zz), flags)``: the encounter-plane miss distance, the
    combined covariance in the encounter frame ``x`` (along the miss), ``z`` (along
    ``r x v``), and flags (``ZERO_RELATIVE_VELOCITY``, ``ZERO_MISS``).
    """
    r1, v1, r2, v2 = (np.atleast_2d(np.asarray(a, dtype=float)) for a in (r1, v1, r2, v2))
    c1, c2 = (np.asarray(c, dtype=float) for c in (cov1, cov2))
    c1 = c1[None] if c1.ndim == 2 else c1
    c2 = c2[None] if c2.ndim == 2 else c2
    n = max(len(r1), len(r2), len(c1), len(c2))
    hbr = np.broadcast_to(np.asarray(hbr, dtype=float), (n,))
    C = c1[..., :3, :3] + c2[..., :3, :3]
    C = np.broadcast_to(C, (n, 3, 3))
    r = np.broadcast_to(r1 - r2, (n, 3))
    v = np.broadcast_to(v1 - v2, (n, 3))
    flags = np.zeros(n, dtype=np.uint8)
    vmag = np.linalg.norm(v, axis=1)
    zero_v = ~(vmag > 0)
    flags[zero_v] |= ZERO_RELATIVE_VELOCITY
    with np.errstate(invalid="ignore", divide="ignore"):
        y = v / vmag[:, None]
        rperp = r - np.sum(r * y, axis=1)[:, None] * y
        miss = np.linalg.norm(rperp, axis=1)
        rmag = np.linalg.norm(r, axis=1)
        small = (miss < np.maximum(10 * np.spacing(rmag), 1e-6 * hbr)) & ~zero_v
        h = np.cross(r, v)
        if small.any():
            flags[small] |= ZERO_MISS
            h = h.copy()
            h[small] = np.cross(np.broadcast_to(r1 + r2, (n, 3))[small], v[small])
        z = _unit(h)
        x = np.cross(y, z)
    Cx = np.einsum("nij,nj->ni", C, x)
    Cz = np.einsum("nij,nj->ni", C, z)
    a_xx = np.sum(x * Cx, axis=1)
    a_xz = np.sum(x * Cz, axis=1)
    a_zz = np.sum(z * Cz, axis=1)
    return miss, (a_xx, a_xz, a_zz), flags


def _eig2x2(a, b, c):
    """Eigen-decomposition of symmetric ``[[a, b], [b, c]]``: ``(l1, l2, v1x, v1z)`` with
    ``l1 >= l2`` and ``(v1x, v1z)`` the unit eigenvector of ``l1`` (CARA's eig2x2)."""
    half_tr = 0.5 * (a + c)
    disc = np.sqrt(np.square(0.5 * (a - c)) + b * b)
    l1 = half_tr + disc
    # l2 from the determinant where that is more accurate (no cancellation)
    det = a * c - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        l2 = np.where(np.abs(l1) > 0, det / l1, half_tr - disc)
    # eigenvector of l1: (b, l1 - a) or (l1 - c, b), whichever is longer
    e1x, e1z = b, l1 - a
    e2x, e2z = l1 - c, b
    use2 = np.hypot(e2x, e2z) > np.hypot(e1x, e1z)
    vx = np.where(use2, e2x, e1x)
    vz = np.where(use2, e2z, e1z)
    norm = np.hypot(vx, vz)
    iso = ~(norm > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        vx = np.where(iso, 1.0, vx / norm)
        vz = np.where(iso, 0.0, vz / norm)
    return l1, l2, vx, vz


def pc_from_states(r1, v1, cov1, r2, v2, cov2, hbr, method: str = "foster") -> PcResult:
    """Pc of ``n`` conjunctions from the two objects' states and covariances at TCA.

    Inputs as :func:`encounter_plane` (one inertial frame, one length unit). ``method``: one
    of :data:`METHODS`. The encounter-plane covariance is remediated as CARA does (eigenvalues
    clipped at ``(1e-4 * hbr)**2``, flagged ``NPD_REMEDIATED``); an event whose larger
    eigenvalue is not positive gets Pc NaN and ``INVALID_COVARIANCE``, one with zero relative
    velocity NaN and ``ZERO_RELATIVE_VELOCITY``; HBR 0 gives Pc 0 and an infinite HBR 1.
    """
    if method not in METHODS:
        raise ValueError(f"unknown Pc method {method!r}; expected one of {', '.join(METHODS)}")
    miss, (axx, axz, azz), flags = encounter_plane(r1, v1, cov1, r2, v2, cov2, hbr)
    n = miss.size
    hbr = np.broadcast_to(np.asarray(hbr, dtype=float), (n,)).copy()
    l1, l2, vx, vz = _eig2x2(axx, axz, azz)
    invalid = ~(l1 > 0) | ~np.isfinite(l2)
    flags[invalid & ~(flags & ZERO_RELATIVE_VELOCITY).astype(bool)] |= INVALID_COVARIANCE
    finite_hbr = np.isfinite(hbr)
    clip = np.square(FCLIP * np.where(finite_hbr, hbr, 0.0))
    rem = ((l1 < clip) | (l2 < clip)) & finite_hbr & ~invalid
    flags[rem] |= NPD_REMEDIATED
    l1c = np.where(finite_hbr, np.maximum(l1, clip), l1)
    l2c = np.where(finite_hbr, np.maximum(l2, clip), l2)
    bad_in = ~(hbr >= 0) & ~np.isinf(hbr) | ~np.isfinite(miss) & ~(flags & ZERO_RELATIVE_VELOCITY).astype(bool)
    flags[bad_in] |= INVALID_INPUT
    with np.errstate(invalid="ignore"):
        sx = np.sqrt(l1c)
        sz = np.sqrt(l2c)
    xm = miss * np.abs(vx)
    zm = miss * np.abs(vz)
    pc = np.full(n, np.nan)
    ok = (flags & (INVALID_COVARIANCE | ZERO_RELATIVE_VELOCITY | INVALID_INPUT)) == 0
    ok &= ~(l2c <= 0)
    pos = ok & finite_hbr & (hbr > 0)
    if method in ("foster", "chan", "alfano2005") and pos.any():
        if method == "foster":
            p, f = pc_circle(xm[pos], zm[pos], sx[pos], sz[pos], hbr[pos], return_flags=True)
            flags[pos] |= f
        elif method == "alfano2005":
            # Orekit's Alfano2005 integrates along the minor axis (its sigmaX is the smaller)
            p = pc_alfano2005(zm[pos], xm[pos], sz[pos], sx[pos], hbr[pos])
        else:
            p = pc_chan(xm[pos], zm[pos], sx[pos], sz[pos], hbr[pos])
        pc[pos] = p
    elif pos.any():
        # CARA's Pc2D_Foster squares: sides along the encounter frame (x along the miss),
        # centred on the miss, correlated covariance (remediated) in that frame.
        half = hbr[pos] * (1.0 if method == "foster-square" else math.sqrt(math.pi) / 2)
        vxp, vzp = vx[pos], vz[pos]
        a11 = l1c[pos] * vxp * vxp + l2c[pos] * vzp * vzp
        a12 = (l1c[pos] - l2c[pos]) * vxp * vzp
        a22 = l1c[pos] * vzp * vzp + l2c[pos] * vxp * vxp
        pc[pos] = pc_rectangle(miss[pos], 0.0, a11, a12, a22, half, half)
    pc[ok & (hbr == 0)] = 0.0
    pc[ok & np.isinf(hbr) & (hbr > 0)] = 1.0
    return PcResult(pc, method, flags, xm, zm, sx, sz, miss)


# ---------------------------------------------------------------------------------------------
# Maximum Pc without covariance (Alfano 2005b, SOCRATES)
# ---------------------------------------------------------------------------------------------

def max_pc(miss, hbr):
    """The largest Pc over the size of an isotropic (circular) encounter-plane covariance.

    ``miss``: miss distance(s) in the encounter plane; ``hbr``: combined hard-body radius
    (same unit). For ``hbr < miss`` the maximum is where ``I1(w)/I0(w) = hbr/miss`` with
    ``w = miss * hbr / sigma**2`` (the derivative of the Rice/Marcum-Q Pc in sigma vanishes;
    for a small HBR this is ``sigma = miss/sqrt(2)``, Pc ``~ hbr^2 / (e miss^2)``); the Pc there
    is integrated exactly. For ``hbr >= miss`` the supremum is 1 (sigma -> 0), reported with
    sigma NaN, as SOCRATES reports max probability 1 and no dilution threshold.

    Returns ``(max_pc, sigma)``: arrays of the broadcast shape; ``sigma`` in the input unit
    (SOCRATES's "dilution threshold").
    """
    d, R = np.broadcast_arrays(np.asarray(miss, dtype=float), np.asarray(hbr, dtype=float))
    shape = d.shape
    d, R = d.ravel(), R.ravel()
    pc = np.full(d.size, np.nan)
    sigma = np.full(d.size, np.nan)
    valid = np.isfinite(d) & np.isfinite(R) & (d >= 0) & (R >= 0)
    inside = valid & (R >= d) & (R > 0)
    pc[inside] = 1.0
    pc[valid & (R == 0)] = 0.0
    sel = np.flatnonzero(valid & (R < d) & (R > 0))
    if sel.size:
        rho = R[sel] / d[sel]
        w = 2 * rho / (1 - rho * rho)
        for _ in range(100):
            a = special.i1e(w) / special.i0e(w)
            fp = 1 - a / w - a * a
            step = (a - rho) / fp
            w_new = np.maximum(w - step, 0.5 * w)
            if np.all(np.abs(w_new - w) <= 1e-15 * w):
                w = w_new
                break
            w = w_new
        s = np.sqrt(d[sel] * R[sel] / w)
        sigma[sel] = s
        pc[sel] = pc_circle(d[sel], 0.0, s, s, R[sel])
    return pc.reshape(shape), sigma.reshape(shape)


#: SOCRATES's covariance shape for its maximum probability (CelesTrak, SOCRATES "Max
#: Probability"): radial, in-track, cross-track standard deviations of 100, 300, 100 m on each
#: object, in km. Only the shape matters: the ellipse they project to is then scaled.
SOCRATES_RIC_SIGMAS_KM = (0.1, 0.3, 0.1)
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def socrates_aspect_ratio(r1, v1, r2, v2, sigmas_ric=SOCRATES_RIC_SIGMAS_KM) -> np.ndarray:
    """Major-to-minor axis ratio of the encounter-plane ellipse that a diagonal covariance
    with ``sigmas_ric`` (radial, in-track, cross-track) on each object projects to: each
    object's covariance in its own RIC frame (CARA's RIC2ECI axes), rotated to the inertial
    frame of ``r``, ``v`` (``(n, 3)``, any consistent unit), summed, projected onto the plane
    normal to the relative velocity. NaN where there is no encounter plane."""
    cov = np.diag(np.r_[np.square(np.asarray(sigmas_ric, dtype=float)), 0.0, 0.0, 0.0])
    c1 = rtn_to_inertial(r1, v1, cov)
    c2 = rtn_to_inertial(r2, v2, cov)
    _, (a, b, c), flags = encounter_plane(r1, v1, c1, r2, v2, c2, 0.0)
    l1, l2, _, _ = _eig2x2(a, b, c)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sqrt(l1 / l2)
    return np.where((flags & ZERO_RELATIVE_VELOCITY) == 0, ratio, np.nan)


def max_pc_ellipse(miss, hbr, aspect):
    """The largest Pc over the size and orientation of an encounter-plane covariance
    ellipse whose major-to-minor axis ratio is ``aspect`` (Alfano 2005): the worst
    orientation puts the miss along the major axis, and the size is the one that maximises
    the Pc (a golden-section search on the log of the minor sigma, each Pc integrated by
    :func:`pc_circle`). ``aspect`` 1 is :func:`max_pc`.

    Returns ``(max_pc, sigma)``: ``sigma`` the minor-axis standard deviation at the maximum
    (SOCRATES's dilution threshold), in the unit of ``miss``; for ``hbr >= miss`` the
    supremum 1 with sigma NaN, as SOCRATES reports it."""
    d, R, ar = (a.ravel() for a in np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (miss, hbr, aspect))))
    shape = np.broadcast_shapes(np.shape(miss), np.shape(hbr), np.shape(aspect))
    pc = np.full(d.size, np.nan)
    sigma = np.full(d.size, np.nan)
    valid = np.isfinite(d) & np.isfinite(R) & np.isfinite(ar) & (d >= 0) & (R >= 0) & (ar >= 1)
    pc[valid & (R >= d) & (R > 0)] = 1.0
    pc[valid & (R == 0)] = 0.0
    sel = np.flatnonzero(valid & (R < d) & (R > 0))
    if sel.size:
        d, R, ar = d[sel], R[sel], ar[sel]

        def f(log_k):
            k = np.exp(log_k)
            return pc_circle(d, 0.0, k * ar, k, R)

        # the maximum lies between these minor sigmas: the major sigma at most twice the miss,
        # and at least 1/1000 of the gap between the circle's edge and the mean, or of the
        # radius when the miss is a hair outside it (below that, pc_circle's nodes miss the
        # sliver of Gaussian inside the circle: the supremum there is about 1/2, not 0)
        a = np.log(np.maximum(1e-3 * (d - R), 1e-3 * R) / ar)
        b = np.log(2.0 * d / ar)
        x1, x2 = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
        f1, f2 = f(x1), f(x2)
        for _ in range(200):
            if np.all(b - a <= 1e-12 * np.maximum(1.0, np.abs(b))):
                break
            left = f1 >= f2           # the maximum is in [a, x2]
            a, b = np.where(left, a, x1), np.where(left, x2, b)
            x1_new = np.where(left, b - _GOLDEN * (b - a), x2)
            x2_new = np.where(left, x1, a + _GOLDEN * (b - a))
            fn = f(np.where(left, x1_new, x2_new))   # one new point per event and step
            f1, f2 = np.where(left, fn, f2), np.where(left, f1, fn)
            x1, x2 = x1_new, x2_new
        best = np.where(f1 >= f2, x1, x2)
        sigma[sel] = np.exp(best)
        pc[sel] = np.maximum(f1, f2)
    return pc.reshape(shape), sigma.reshape(shape)


def max_pc_socrates(r1, v1, r2, v2, hbr, sigmas_ric=SOCRATES_RIC_SIGMAS_KM):
    """SOCRATES's maximum probability of two states at TCA (``(n, 3)``, one inertial frame,
    any length unit; ``hbr`` in that unit): :func:`max_pc_ellipse` for the encounter-plane
    miss and the axis ratio of :func:`socrates_aspect_ratio`. Returns ``(max_pc, sigma)``,
    ``sigma`` the minor-axis standard deviation at the maximum (the dilution threshold)."""
    r1, v1, r2, v2 = (np.atleast_2d(np.asarray(a, dtype=float)) for a in (r1, v1, r2, v2))
    miss, _, _ = encounter_plane(r1, v1, np.zeros((3, 3)), r2, v2, np.zeros((3, 3)), 0.0)
    return max_pc_ellipse(miss, hbr, socrates_aspect_ratio(r1, v1, r2, v2, sigmas_ric))


def max_pc_from_miss(miss_vector, relative_velocity, hbr):
    """:func:`max_pc` for screening output: ``miss_vector`` and ``relative_velocity`` as
    ``(n, 3)`` (any frame, consistent units), ``hbr`` scalar or ``(n,)`` in the miss unit. The
    miss is first projected onto the encounter plane (normal to the relative velocity).
    Returns ``(max_pc, sigma)``."""
    r = np.atleast_2d(np.asarray(miss_vector, dtype=float))
    v = np.atleast_2d(np.asarray(relative_velocity, dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        y = v / np.linalg.norm(v, axis=1, keepdims=True)
        rperp = r - np.sum(r * y, axis=1, keepdims=True) * y
    miss = np.where(np.isfinite(rperp).all(axis=1), np.linalg.norm(rperp, axis=1),
                    np.linalg.norm(r, axis=1))
    return max_pc(miss, hbr)


# ---------------------------------------------------------------------------------------------
# CDM helpers
# ---------------------------------------------------------------------------------------------

#: Frames in which two states can be differenced directly (no rotation to apply).
INERTIAL_FRAMES = frozenset({"EME2000", "GCRF", "ICRF", "TEME", "J2000"})


def rtn_to_inertial(r, v, cov_rtn):
    """Rotate ``(n, 6, 6)`` (or ``(6, 6)``) RTN covariances to the inertial frame of ``r``,
    ``v`` (``(n, 3)``): R along r, N along r x v, T = N x R (CARA's RIC2ECI)."""
    r = np.atleast_2d(np.asarray(r, dtype=float))
    v = np.atleast_2d(np.asarray(v, dtype=float))
    c = np.asarray(cov_rtn, dtype=float)
    c = c[None] if c.ndim == 2 else c
    R = _unit(r)
    N = _unit(np.cross(r, v))
    T = np.cross(N, R)
    M = np.stack([R, T, N], axis=1)          # rows: R, T, N in inertial coordinates
    k = c.shape[-1] // 3
    Q = np.zeros((M.shape[0], 3 * k, 3 * k))
    for i in range(k):
        Q[:, 3 * i:3 * i + 3, 3 * i:3 * i + 3] = M
    return np.einsum("nji,njk,nkl->nil", Q, c, Q)


def pc_from_cdm(messages, hbr_m=None, method: str = "foster") -> PcResult:
    """Pc of CDMs (:class:`ssafuse.formats.ccsds.cdm.Cdm`), as CARA's ``Pc2D_FromCDM``: states (km) and RTN
    covariances (m^2) from each object, covariances rotated to the inertial frame, the linear
    TCA adjustment, Pc in metres. ``hbr_m``: combined hard-body radius in metres (scalar or one
    per message); default: each CDM's own (:meth:`Cdm.hbr_m`), NaN when it states none.
    Messages whose objects are not in the same inertial frame are flagged ``INVALID_INPUT``.
    """
    msgs = list(messages)
    n = len(msgs)
    r = np.zeros((2, n, 3))
    v = np.zeros((2, n, 3))
    c = np.zeros((2, n, 6, 6))
    frame_ok = np.ones(n, dtype=bool)
    for i, m in enumerate(msgs):
        frames = set()
        for j, obj in enumerate(m.objects):
            r[j, i] = [obj[k] * 1e3 for k in ("X", "Y", "Z")]
            v[j, i] = [obj[k] * 1e3 for k in ("X_DOT", "Y_DOT", "Z_DOT")]
            c[j, i] = m.covariance_rtn(j)
            frames.add(obj.get("REF_FRAME"))
        frame_ok[i] = len(frames) == 1 and frames <= INERTIAL_FRAMES
    if hbr_m is None:
        hbr = np.array([m.hbr_m() if m.hbr_m() is not None else np.nan for m in msgs])
    else:
        hbr = np.broadcast_to(np.asarray(hbr_m, dtype=float), (n,)).copy()
    if n == 0:
        z = np.zeros(0)
        return PcResult(z, method, np.zeros(0, np.uint8), z, z, z, z, z)
    C1 = rtn_to_inertial(r[0], v[0], c[0])
    C2 = rtn_to_inertial(r[1], v[1], c[1])
    hbr_use = np.where(np.isnan(hbr), -1.0, hbr)
    res = pc_from_states(r[0], v[0], C1, r[1], v[1], C2, hbr_use, method)
    flags = res.flags.copy()
    pc = res.pc.copy()
    bad = ~frame_ok | np.isnan(hbr)
    flags[bad] |= INVALID_INPUT
    pc[bad] = np.nan
    return PcResult(pc, method, flags, res.xm, res.zm, res.sx, res.sz, res.miss)


def load_cara_hbr(path) -> dict[int, float]:
    """CARA's per-object hard-body radius table (``HBR_Mass_Estimates_*.csv`` from
    nasa/CARA_Analysis_Tools, DataFiles/HBRMassEstimates): ``{norad_id: hbr_m}`` for the rows
    that give an HBR (metres). The combined HBR of a conjunction is the sum of both objects'."""
    out: dict[int, float] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            try:
                oid = int(row["ObjectID"])
                hbr = float(row["HBR"])
            except (KeyError, TypeError, ValueError):
                continue
            if math.isfinite(hbr) and hbr >= 0:
                out[oid] = hbr
    return out


def combined_hbr(*, cdm_hbr: float | None, table: dict[int, float] | None, ids,
                 override: float | None = None,
                 fallback: float | None = None) -> tuple[float, str | None]:
    """The combined hard-body radius (metres) of one conjunction and where it came from: the
    first that applies of ``override`` (``'option'``), the CDM's own ``cdm_hbr`` (``'cdm'``),
    the sum of both objects' radii in CARA's ``table`` (:func:`load_cara_hbr`) when both
    ``ids`` (the two NORAD numbers; ``None`` for one that is not a number) are listed
    (``'cara-table'``), and ``fallback`` (``'hbr_m'``); ``(nan, None)`` when none does."""
    if override is not None:
        return float(override), "option"
    if cdm_hbr is not None:
        return cdm_hbr, "cdm"
    if table:
        h1, h2 = (None if i is None else table.get(i) for i in ids)
        if h1 is not None and h2 is not None:
            return h1 + h2, "cara-table"
    if fallback is not None:
        return float(fallback), "hbr_m"
    return math.nan, None

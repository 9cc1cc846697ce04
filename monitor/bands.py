"""Band-pass filter design for the band-energy features (pure core, run once per spec).

Each band is a 4th-order Butterworth band-pass: two biquads, designed by the bilinear
transform with pre-warped edges, so the -3 dB points fall exactly on the requested edges
and the gain at the band's centre is exactly 1. Band edges are clamped below Nyquist. The
streaming kernels in features.py run the sections; this module only computes coefficients.
It never reads a clock and never touches a socket.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from monitor.errors import FeatureSpecError

NYQUIST_CLAMP = 0.49  # band edges are clamped to this fraction of the sample rate
SECTIONS = 2  # biquads per band (4th-order band-pass)

F64Array = npt.NDArray[np.float64]


def band_sections(lo_hz: float, hi_hz: float, rate_hz: float) -> F64Array:
    """Two biquads ``[g, a1, a2]`` (numerator g*(1 - z^-2)) of a 4th-order Butterworth band-pass.

    The 2nd-order Butterworth low-pass prototype (poles exp(+-j3pi/4)) is mapped to a band-pass
    with s -> (s^2 + W0^2) / (B s), using edges pre-warped for the bilinear transform
    (W = tan(pi f / fs)), B = W2 - W1, W0^2 = W1 W2. Each analog pole pair maps to z-plane poles
    z = (1 + s) / (1 - s); the zeros sit at z = +1 and z = -1. Each section is scaled to unit
    gain at the digital centre frequency, so the band's gain there is exactly 1 and the -3 dB
    points fall on the requested edges.
    """
    hi = min(hi_hz, NYQUIST_CLAMP * rate_hz)
    if not 0 < lo_hz < hi:
        raise FeatureSpecError(f"bands_hz: band ({lo_hz}, {hi_hz}) is empty at {rate_hz} Hz")
    w1 = math.tan(math.pi * lo_hz / rate_hz)
    w2 = math.tan(math.pi * hi / rate_hz)
    bw, w0sq = w2 - w1, w1 * w2
    p = complex(-math.sqrt(0.5), math.sqrt(0.5))
    disc = np.sqrt(complex(p * p * bw * bw - 4.0 * w0sq))
    w0 = 2.0 * math.atan(math.sqrt(w0sq))  # digital centre frequency, rad/sample
    zi = complex(math.cos(w0), -math.sin(w0))  # z^-1 at the centre
    out = np.empty((SECTIONS, 3), dtype=np.float64)
    for i, s in enumerate(((p * bw + disc) / 2.0, (p * bw - disc) / 2.0)):
        z = (1.0 + s) / (1.0 - s)
        a1, a2 = -2.0 * z.real, abs(z) ** 2
        gain = abs((1.0 + a1 * zi + a2 * zi * zi) / (1.0 - zi * zi))
        out[i] = (gain, a1, a2)
    return out


def band_response(sections: F64Array, freq_hz: float, rate_hz: float) -> float:
    """|H(f)| of a band's cascade; for tests and documentation."""
    w = 2.0 * math.pi * freq_hz / rate_hz
    zi = complex(math.cos(w), -math.sin(w))
    h = complex(1.0)
    for g, a1, a2 in sections:
        h *= g * (1.0 - zi * zi) / (1.0 + a1 * zi + a2 * zi * zi)
    return abs(h)

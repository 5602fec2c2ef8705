#!/usr/bin/python3
"""Fit the rational tanh of src/simd_nn.h (KFN(Tanh8)) and check it in float.

tanh(x) ~ x P(x^2) / Q(x^2) on [0, C], Q(0) = 1.  The fit is linear least
squares on x P(u) - tanh(x) Q(u) = 0 (u = x^2, scaled by C^2 for
conditioning), weighted by 1 / (tanh(x) Q_previous(u)) so that it minimizes
the relative error (Sanathanan-Koerner iteration), then reweighted by the
error itself (Lawson) to move towards the minimax fit.  The result is then
evaluated the way the kernel does it - float32 Horner steps with fused
multiply-adds, one float division, x clamped to C - and its error printed.

Usage: test/fit_tanh.py [NP NQ] [--clamp C]
  NP coefficients of P (default 6: degree 5 in x^2), NQ of Q besides the
  leading 1 (default 3).
"""
import argparse

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("np_", nargs="?", type=int, default=6, metavar="NP")
ap.add_argument("nq", nargs="?", type=int, default=3, metavar="NQ")
ap.add_argument("--clamp", type=float, default=9.0)
a = ap.parse_args()
NP, NQ, C = a.np_, a.nq, a.clamp

x = np.concatenate([np.linspace(1e-3, C, 40000), np.geomspace(1e-5, 1e-3, 500)])
x.sort()
t = np.tanh(x)
u = (x / C) ** 2


def poly(c, v):
    return np.polyval(c[::-1], v)


q_prev = np.ones_like(x)
lawson = np.ones_like(x)
for it in range(80):
    w = lawson / (t * q_prev)
    A = np.hstack([x[:, None] * u[:, None] ** np.arange(NP)[None, :],
                   -(t[:, None] * u[:, None] ** np.arange(1, NQ + 1)[None, :])])
    sol, *_ = np.linalg.lstsq(A * w[:, None], t * w, rcond=None)
    p = sol[:NP]
    q = np.concatenate([[1.0], sol[NP:]])
    q_prev = poly(q, u)
    err = (x * poly(p, u) / q_prev - t) / t
    if it > 10:
        lawson = np.maximum(lawson * np.abs(err) ** 0.3 / lawson.max(), 1e-12)
print("relative error in double: %.3g (Q >= %.6f on [0, C])" % (np.abs(err).max(), q_prev.min()))

# back to coefficients in x^2
P = p / C ** (2 * np.arange(NP))
Q = q / C ** (2 * np.arange(NQ + 1))

f32 = np.float32
xs = np.linspace(0, C + 1, 3000001).astype(f32)
xc = np.minimum(xs, f32(C))
uu = (xc * xc).astype(f32)


def horner32(c, v):
    c = c.astype(f32)
    r = np.full(v.shape, c[-1], dtype=f32)
    for k in c[-2::-1]:
        r = (r.astype(np.float64) * v + np.float64(k)).astype(f32)   # fused: one rounding
    return r


y = ((xc * horner32(P, uu)).astype(f32) / horner32(Q, uu)).astype(f32)
ref = np.tanh(xs.astype(np.float64))
abs_err = np.abs(y.astype(np.float64) - ref)
small = (xs > 0) & (xs < 0.5)
ulp = np.spacing(ref[small].astype(f32)).astype(np.float64)
print("in float: max absolute error %.3g (at x = %.4g); below x = 0.5 at most %.2f ulp"
      % (abs_err.max(), xs[abs_err.argmax()], (abs_err[small] / ulp).max()))
print("P =", ", ".join("%.9e" % v for v in P))
print("Q =", ", ".join("%.9e" % v for v in Q))

#!/usr/bin/python3
"""Reference values for sql/metrics.sql, computed with scikit-learn/numpy/scipy.

Scores are fixed expressions of each data/*.csv row (no model needed), computed
in the same order as the SQL test so that the doubles are identical:
  sum   = the sum of the feature columns, left to right
  first = the first feature (many ties)
Run from the repository root:  /usr/bin/python3 test/metrics_reference.py
It prints the INSERT that sql/metrics.sql holds.
"""
import csv
import glob
import os

import numpy as np
from scipy import optimize
from scipy.stats import genpareto
from sklearn.metrics import (accuracy_score, average_precision_score,
                             confusion_matrix, f1_score, precision_score,
                             recall_score, roc_auc_score)


def load(path):
    with open(path) as f:
        rows = list(csv.reader(f))[1:]
    feats = [[float(v) for v in r[:-1]] for r in rows]
    y = np.array([r[-1] == "1" for r in rows])
    total = []
    for r in feats:
        s = 0.0
        for v in r:
            s += v
        total.append(s)
    return np.array(total), np.array([r[0] for r in feats]), y


def precision_at_k(s, y, k):
    """Precision among the k highest scores; a tied group at place k counts
    in proportion (expected precision under a random order of the ties)."""
    k = min(k, len(s))
    v = np.sort(s)[::-1][k - 1]
    above = s > v
    tied = s == v
    return (y[above].sum() + (k - above.sum()) * y[tied].mean()) / k


def gpd_loglik(y, gamma, sigma):
    if sigma <= 0:
        return -np.inf
    if abs(gamma) < 1e-12:
        return -len(y) * np.log(sigma) - y.sum() / sigma
    z = gamma * y / sigma
    if np.any(z <= -1):
        return -np.inf
    return -len(y) * np.log(sigma) - (1 + 1 / gamma) * np.log1p(z).sum()


def pot(scores, risk, level):
    """SPOT's batch threshold: MLE of a GPD above the level quantile (method of
    moments under 10 peaks), found by direct 2-D optimization and polished
    on the stationarity equation (not by the C code's grid scan)."""
    s = np.sort(scores)
    n = len(s)
    t = np.quantile(s, level)
    y = s[s > t] - t
    nt = len(y)
    if nt < 10:
        m, v = y.mean(), y.var(ddof=1)
        gamma, sigma = 0.5 * (1 - m * m / v), 0.5 * m * (1 + m * m / v)
    else:
        starts = [(0.1, y.mean()), (-0.1, y.mean()), (0.5, y.mean())]
        c, loc, sc = genpareto.fit(y, floc=0)
        starts.append((c, sc))
        best = (gpd_loglik(y, 0.0, y.mean()), 0.0, y.mean())
        for g0, s0 in starts:
            r = optimize.minimize(lambda p: -gpd_loglik(y, p[0], np.exp(p[1])),
                                  [g0, np.log(s0)], method="Nelder-Mead",
                                  options=dict(xatol=1e-12, fatol=1e-14, maxiter=20000))
            g, sg = r.x[0], np.exp(r.x[1])
            if g <= -1 or g == 0:
                continue
            # polish: stationary points are the roots of u(x) v(x) = 1, x = g / sg
            def w(x):
                z = 1 + x * y
                return np.mean(1 / z) * (1 + np.mean(np.log(z))) - 1
            x0 = g / sg
            lo, hi = x0 * (1 - 1e-4), x0 * (1 + 1e-4)
            if w(lo) * w(hi) < 0:
                x = optimize.brentq(w, lo, hi, xtol=1e-300, rtol=1e-15, maxiter=500)
                g = np.mean(np.log1p(x * y))
                sg = g / x
            ll = gpd_loglik(y, g, sg)
            if ll > best[0] + 1e-12:
                best = (ll, g, sg)
        _, gamma, sigma = best
    r = risk * n / nt
    if gamma == 0:
        return t - sigma * np.log(r)
    return t + sigma / gamma * (r ** (-gamma) - 1)


# Small cases with ties, as the SQL test builds them (infinite scores are
# written as +-1e300 here: scikit-learn rejects infinity, the ranking is the same)
EDGE = {
    "edge_same": ([1.0] * 5, [1, 0, 0, 1, 0]),
    "edge_ties": ([0.1, 0.1, 0.2, 0.2, 0.2, 0.3, 0.5, 0.5], [0, 1, 0, 1, 1, 0, 1, 0]),
    "edge_inf": ([-1e300, 0, 1, 1e300, 1e300], [0, 1, 0, 1, 0]),
    "edge_inverted": ([1, 2, 3, 4], [1, 1, 0, 0]),
}


def main():
    out = []
    for name, (s, y) in EDGE.items():
        out.append("    ('%s', 'roc', %r)" % (name, float(roc_auc_score(y, s))))
        out.append("    ('%s', 'pr', %r)" % (name, float(average_precision_score(y, s))))
    for path in sorted(glob.glob("data/*.csv")):
        name = os.path.basename(path)[:-4]
        total, first, y = load(path)
        npos = int(y.sum())
        thr = np.quantile(total, 0.95)
        flag = total > thr
        tn, fp, fn, tp = confusion_matrix(y, flag).ravel()
        vals = {
            "roc_sum": roc_auc_score(y, total),
            "pr_sum": average_precision_score(y, total),
            "roc_neg": roc_auc_score(y, -total),
            "pr_neg": average_precision_score(y, -total),
            "roc_first": roc_auc_score(y, first),
            "pr_first": average_precision_score(y, first),
            "p_at_10": precision_at_k(total, y, 10),
            "p_at_pos": precision_at_k(total, y, npos),
            "p_at_10_first": precision_at_k(first, y, 10),
            "thr_05": thr,
            "thr_pos": np.quantile(total, 1 - npos / len(total)),
            "tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "precision": precision_score(y, flag, zero_division=0),
            "recall": recall_score(y, flag, zero_division=0),
            "f1": f1_score(y, flag, zero_division=0),
            "accuracy": accuracy_score(y, flag),
            "pot_98": pot(total, 1e-3, 0.98),
            "pot_90": pot(total, 1e-3, 0.90),
        }
        for k, v in vals.items():
            out.append("    ('%s', '%s', %r)" % (name, k, float(v)))
    print("INSERT INTO metrics_expected VALUES\n" + ",\n".join(out) + ";")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""ODDS-style anomaly sets from the data files Debian's python3-sklearn ships:
a minority class is down-sampled (numpy default_rng(0)) and labelled 1.
Usage: make_sklearn.py OUTDIR"""
import sys
import numpy as np
from sklearn import datasets

out = sys.argv[1] if len(sys.argv) > 1 else "."


def mk(name, X, anom, frac):
    rng = np.random.default_rng(0)
    norm = np.flatnonzero(~anom)
    a = np.flatnonzero(anom)
    n_anom = max(5, round(frac * len(norm) / (1 - frac)))
    if len(a) > n_anom:
        a = np.sort(rng.choice(a, n_anom, replace=False))
    keep = np.sort(np.concatenate([norm, a]))
    cols = ["f%d" % i for i in range(X.shape[1])] + ["label"]
    M = np.column_stack([X[keep], anom[keep].astype(int)])
    np.savetxt(f"{out}/{name}.csv", M, delimiter=",", header=",".join(cols),
               comments="", fmt=["%.6g"] * X.shape[1] + ["%d"])
    print(f"{name}: {len(keep)} x {X.shape[1]}, {anom[keep].sum()} anomalies")


w = datasets.load_wine()
mk("wine", w.data, w.target == 0, 0.08)
d = datasets.load_digits()
mk("digits", d.data, d.target == 0, 0.05)
i = datasets.load_iris()
mk("iris", i.data, i.target == 0, 0.05)

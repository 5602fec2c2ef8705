#!/usr/bin/python3
"""Cross-check the evaluation aggregates against scikit-learn and the POT
aggregate against the reference fit (test/metrics_reference.py) on random
samples of several distributions, with ties.  Prints a table of the largest
differences.  Needs a database with the extension (libpq environment:
PGHOST, PGPORT, PGUSER, PGDATABASE).

    /usr/bin/python3 -W ignore test/metrics_crosscheck.py [trials]
"""
import os
import sys

import numpy as np
import psycopg2
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from metrics_reference import pot  # noqa: E402


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    conn = psycopg2.connect("")
    cur = conn.cursor()
    rng = np.random.default_rng(1)
    kinds = {
        "normal": lambda n: rng.normal(size=n),
        "lognormal": lambda n: rng.lognormal(size=n),
        "uniform": lambda n: rng.uniform(size=n),
        "pareto": lambda n: rng.pareto(1.5, size=n),
        "t3": lambda n: rng.standard_t(3, size=n),
        "exp": lambda n: rng.exponential(size=n),
        "ties": lambda n: np.round(rng.normal(size=n), 1),
    }
    names = list(kinds)
    worst = {k: [0.0, 0.0] for k in names}  # auc/ap absolute, pot relative
    for trial in range(trials):
        kind = names[trial % len(names)]
        n = int(rng.integers(200, 6000))
        x = kinds[kind](n)
        y = rng.uniform(size=n) < 0.2 + 0.3 * (x > np.median(x))
        xs, ys = [float(v) for v in x], [bool(v) for v in y]
        cur.execute("SELECT anomaly_roc_auc(s, l), anomaly_pr_auc(s, l) FROM unnest(%s::float8[], %s::bool[]) u(s, l)",
                    (xs, ys))
        roc, ap = cur.fetchone()
        d = max(abs(roc - roc_auc_score(y, x)), abs(ap - average_precision_score(y, x)))
        worst[kind][0] = max(worst[kind][0], d)
        for level in (0.9, 0.98):
            cur.execute("SELECT anomaly_pot_threshold(s, 1e-4, %s) FROM unnest(%s::float8[]) s", (level, xs))
            got = cur.fetchone()[0]
            ref = pot(x, 1e-4, level)
            worst[kind][1] = max(worst[kind][1], abs(got - ref) / abs(ref))
    print("%-10s %22s %22s" % ("sample", "max |diff| AUC/AP", "max rel diff POT"))
    for k in names:
        print("%-10s %22.3g %22.3g" % (k, worst[k][0], worst[k][1]))


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Fitting L(N, D) to 64 runs with Chinchilla's recipe (Huber δ=1e-3 on log-loss, grid of
# 4 500 starts): `fmlab plan fit` against SciPy's L-BFGS-B on the same objective and grid.
source "$(dirname "$0")/lib.sh"
"$PY" -m pip install --quiet numpy scipy
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY" - "$work/runs.csv" <<'PY'
import random, sys
random.seed(7)
E, A, B, a, b = 1.82, 482.0, 2085.0, 0.35, 0.37
with open(sys.argv[1], "w") as f:
    f.write("params,tokens,loss\n")
    for i in range(8):
        for j in range(8):
            n, d = 1e7 * 10 ** (i * 3 / 7), 1e8 * 10 ** (j * 4 / 7)
            f.write(f"{n},{d},{(E + A / n**a + B / d**b) * (1 + 0.002 * random.gauss(0, 1))}\n")
PY
cat > "$work/fit.py" <<'PY'
import itertools, sys
import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp
data = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
logn, logd, logl = np.log(data[:, 0]), np.log(data[:, 1]), np.log(data[:, 2])
def objective(t):
    a, b, e, alpha, beta = t
    pred = logsumexp([a - alpha * logn, b - beta * logd, np.full_like(logn, e)], axis=0)
    r = pred - logl
    return np.where(np.abs(r) <= 1e-3, 0.5 * r * r, 1e-3 * (np.abs(r) - 0.5e-3)).sum()
best = None
grid = itertools.product(np.arange(0, 30, 5), np.arange(0, 30, 5), np.arange(-1, 1.5, 0.5), np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))
for start in grid:
    r = minimize(objective, start, method="L-BFGS-B")
    if best is None or r.fun < best.fun:
        best = r
a, b, e, alpha, beta = best.x
print(f"E={np.exp(e):.4f} A={np.exp(a):.2f} B={np.exp(b):.2f} alpha={alpha:.4f} beta={beta:.4f}")
PY
echo "fmlab:  $("$FMLAB" plan fit "$work/runs.csv" --plot "$work/fit.png" --json | "$PY" -c 'import json,sys; v=json.load(sys.stdin); print("E=%.4f A=%.2f B=%.2f alpha=%.4f beta=%.4f" % (v["E"], v["A"], v["B"], v["alpha"], v["beta"]))')"
echo "scipy:  $("$PY" "$work/fit.py" "$work/runs.csv")"
ours=$(median_seconds 3 "$FMLAB" plan fit "$work/runs.csv" --plot "$work/fit.png")
theirs=$(median_seconds 1 "$PY" "$work/fit.py" "$work/runs.csv")
echo "time: fmlab ${ours}s, scipy ${theirs}s"
awk -v a="$ours" -v b="$theirs" 'BEGIN {printf "ratio scipy / fmlab: %.1fx\n", b / a}'

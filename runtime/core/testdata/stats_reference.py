"""Reference values for runtime/core/src/stats.rs, computed with SciPy.

Run once by hand (python3 stats_reference.py > stats_reference.json); the Rust
tests read the JSON. Not run by CI.
"""
import json
from scipy import integrate, stats

def proportions(nc, xc, nt, xt):
    rc, rt = xc / nc, xt / nt
    pooled = (xc + xt) / (nc + nt)
    se = (pooled * (1 - pooled) * (1 / nc + 1 / nt)) ** 0.5
    p_value = 2 * stats.norm.sf(abs(rt - rc) / se) if se > 0 else 1.0
    lift = lo = hi = None
    if rc > 0:
        lift = (rt - rc) / rc
        var = rt * (1 - rt) / nt / rc**2 + rt**2 * rc * (1 - rc) / nc / rc**4
        z = stats.norm.ppf(0.975)
        lo, hi = lift - z * var**0.5, lift + z * var**0.5
    a = stats.beta(1 + xc, 1 + nc - xc)
    b = stats.beta(1 + xt, 1 + nt - xt)
    lo_x = max(0.0, min(a.ppf(1e-12), b.ppf(1e-12)))
    hi_x = min(1.0, max(a.isf(1e-12), b.isf(1e-12)))
    beat, _ = integrate.quad(lambda x: b.pdf(x) * a.cdf(x), lo_x, hi_x, limit=500, points=[rc, rt])
    return {"control": [nc, xc], "treatment": [nt, xt], "lift": lift, "lift_ci": [lo, hi],
            "p_value": p_value, "chance_to_beat_control": beat}

def srm(observed, weights):
    total = sum(observed)
    return {"observed": observed, "weights": weights,
            "p_value": stats.chisquare(observed, [total * w for w in weights]).pvalue}

print(json.dumps({
    "proportions": [proportions(*c) for c in [
        (1000, 100, 1000, 120), (500, 50, 520, 40), (10000, 1234, 10050, 1301),
        (50, 5, 50, 5), (100000, 5000, 100000, 5200), (200, 0, 200, 3), (300, 150, 310, 160)]],
    "srm": [srm(*c) for c in [
        ([500, 500], [0.5, 0.5]), ([540, 460], [0.5, 0.5]), ([5000, 4700], [0.5, 0.5]),
        ([100, 200, 300], [1/3, 1/3, 1/3]), ([1000, 1000], [0.3, 0.7]), ([305, 695], [0.3, 0.7])]],
}, indent=1))

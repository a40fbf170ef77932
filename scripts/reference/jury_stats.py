#!/usr/bin/env python3
"""Reference figures for the easel-agreement crate, computed with scipy, numpy, scikit-learn and pingouin.

Regenerate (from the repository root):

    pip install -r scripts/reference/jury-requirements.txt && python scripts/reference/jury_stats.py

It writes crates/agreement/tests/fixtures/reference.json: several jury rounds (scale, entries with
their model scores, jurors, juror scores, some flagged as conflicted) and, for each, every figure
that `easel_agreement::round::standings` and `round::agreement` produce (except the bootstrap
intervals, which the Rust tests check by their properties), plus `top_by` and `recall`.
`crates/agreement/tests/reference.rs` reads it; the Rust tests never need Python.

The data are drawn from a seeded numpy generator but written out in full, so the fixture, not
this script's randomness, is what the tests rely on.

Conventions mirrored from the crate (see `crates/agreement/src/round.rs`):
- conflicted scores are dropped before anything is computed (the caller's job in Easel);
- correlations, kappa, ICC and the calibration need >= 3 paired values, otherwise null;
- a figure whose formula divides by a variance of constant values is null (where scipy and
  friends give NaN, the fixture has null);
- z-scores per juror use the juror's round mean and sample sd (ddof 1); a juror with < 2 scores
  or sd 0 contributes no z-scores; the normalised panel mean is centre + mean(z) * spread,
  centre/spread = mean of the usable jurors' means/sds, clipped to the scale;
- kappa compares round(calibrated model) with round(panel value), halves away from zero,
  clipped to the scale.
"""

from __future__ import annotations

import json
import math
import uuid
import warnings
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pingouin
import scipy
import sklearn
from scipy import stats
from sklearn.metrics import cohen_kappa_score

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "crates" / "agreement" / "tests" / "fixtures" / "reference.json"
NAMESPACE = uuid.UUID("6f1d7c2e-9a4b-4e3f-8c5d-2b7a1e0f9d31")
MIN_PAIRED = 3
TOP_N = 10


# ---------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------


def ident(case: str, kind: str, i: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{case}/{kind}/{i}"))


def make_round(case, scale, model, jurors, scores, conflicted=()):
    """model: list of model scores (None = unscored); scores: {(entry, juror): score}."""
    entries = [{"id": ident(case, "entry", i), "model": m} for i, m in enumerate(model)]
    juror_list = [{"id": ident(case, "juror", j), "name": name} for j, name in enumerate(jurors)]
    score_list = [
        {
            "entry": entries[e]["id"],
            "juror": juror_list[j]["id"],
            "score": float(s),
            "conflicted": (e, j) in conflicted,
        }
        for (e, j), s in sorted(scores.items())
    ]
    return {"scale": {"min": scale[0], "max": scale[1]}, "entries": entries, "jurors": juror_list, "scores": score_list}


def normal():
    """60 entries, 4 jurors (fair, lenient, harsh, noisy), ~10 % of scores missing, two conflicted
    scores (extreme, so including them would show), two entries the model has not scored and
    three where it is far off."""
    rng = np.random.default_rng(20261202)
    n = 60
    quality = rng.normal(5.5, 1.8, n)
    offsets = [0.0, 1.5, -1.5, 0.0]
    noise = [0.8, 0.8, 0.8, 1.6]
    scores = {}
    for j in range(4):
        for e in range(n):
            if rng.random() < 0.1:
                continue
            scores[(e, j)] = int(np.clip(np.rint(quality[e] + offsets[j] + rng.normal(0, noise[j])), 1, 10))
    conflicted = {(3, 2), (17, 1)}
    scores[(3, 2)] = 10
    scores[(17, 1)] = 1
    model = [float(np.round(np.clip(10 * q + rng.normal(0, 8), 1, 100), 1)) for q in quality]
    for e, m in [(5, 95.0), (11, 4.0), (40, 88.5)]:
        model[e] = m
    model[7] = None
    model[29] = None
    names = ["Ada Fair", "Bea Lenient", "Cy Harsh", "Dee Noisy"]
    return make_round("normal", (1, 10), model, names, scores, conflicted), {"threshold": 1.5}


def ties():
    """Heavy ties on both sides: a 1-5 scale with jurors mostly at 2-4 and a model on three levels."""
    rng = np.random.default_rng(7)
    n = 15
    level = rng.integers(0, 3, n)
    model = [float([40, 60, 80][lv]) for lv in level]
    scores = {}
    for j in range(3):
        for e in range(n):
            scores[(e, j)] = int(np.clip(2 + level[e] + rng.integers(-1, 2) * (rng.random() < 0.4), 1, 5))
    return make_round("ties", (1, 5), model, ["Eli", "Fay", "Gus"], scores), {"threshold": 1.0}


def one_juror():
    """A single juror: no inter-juror figures, no comparison with others."""
    model = [12.0, 35.5, 50.0, 61.0, 77.0, 80.0, 90.5, 22.0]
    scores = {(e, 0): s for e, s in enumerate([2, 4, 5, 5, 8, 7, 9, 3])}
    return make_round("one_juror", (1, 10), model, ["Hal Alone"], scores), {"threshold": 1.5}


def constant():
    """A juror who always gives 7 and a model that gives everything 50."""
    model = [50.0] * 8
    a = [3, 5, 6, 8, 4, 9, 2, 7]
    b = [4, 5, 7, 8, 3, 9, 3, 6]
    scores = {}
    for e in range(8):
        scores[(e, 0)] = a[e]
        scores[(e, 1)] = b[e]
        scores[(e, 2)] = 7
    return make_round("constant", (1, 10), model, ["Ivy", "Jon", "Kit Always7"], scores), {"threshold": 1.5}


def unanimous():
    """Every juror gives every entry 5: the panel is constant, the model is not."""
    model = [10.0, 30.0, 50.0, 70.0, 90.0, 45.0]
    scores = {(e, j): 5 for e in range(6) for j in range(2)}
    return make_round("unanimous", (1, 10), model, ["Lu", "Mo"], scores), {"threshold": 1.5}


def too_few():
    """Only 2 entries have both a model score and a panel score."""
    model = [20.0, 70.0, 55.0, None]
    scores = {(0, 0): 3, (0, 1): 4, (1, 0): 8, (1, 1): 7, (3, 0): 6, (3, 1): 6}
    return make_round("too_few", (1, 10), model, ["Ned", "Oli"], scores), {"threshold": 1.5}


def sparse():
    """An entry nobody scored, model scores missing for five entries, a juror who scored nothing
    and one who scored a single entry; the rest score about 80 % of the entries."""
    rng = np.random.default_rng(99)
    n = 18
    quality = rng.normal(50, 20, n)
    model = [float(np.round(np.clip(q + rng.normal(0, 10), 1, 100), 2)) for q in quality]
    for e in (2, 6, 9, 13, 16):
        model[e] = None
    scores = {}
    for j in range(3):
        for e in range(1, n):
            if rng.random() < 0.8:
                scores[(e, j)] = int(np.clip(np.rint(quality[e] / 10 + rng.normal(0, 1)), 1, 10))
    scores[(5, 4)] = 6
    names = ["Pat", "Quin", "Rae", "Sol Idle", "Tam Once"]
    return make_round("sparse", (1, 10), model, names, scores), {"threshold": 1.0}


def disjoint():
    """Two jurors who never score the same entry: nothing to compare them on."""
    model = [15.0, 25.0, 35.0, 45.0, 55.0, 65.0, 75.0, 85.0]
    scores = {(e, 0): s for e, s in zip(range(4), [2, 3, 5, 4])}
    scores.update({(e, 1): s for e, s in zip(range(4, 8), [6, 8, 7, 9])})
    return make_round("disjoint", (1, 10), model, ["Uma", "Vic"], scores), {"threshold": 1.5}


DATASETS = [normal, ties, one_juror, constant, unanimous, too_few, sparse, disjoint]


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def clean(x):
    """NaN -> None, numpy scalars -> Python floats."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def constant_values(values) -> bool:
    return len(values) > 0 and all(v == values[0] for v in values)


def whole_point(x: float, lo: int, hi: int) -> int:
    """Round half away from zero (Rust's f64::round) exactly, then clip to the scale."""
    rounded = int(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return min(max(rounded, lo), hi)


def long_scores(rnd) -> pd.DataFrame:
    entries = {e["id"] for e in rnd["entries"]}
    jurors = {j["id"] for j in rnd["jurors"]}
    rows = [
        (s["entry"], s["juror"], s["score"])
        for s in rnd["scores"]
        if not s["conflicted"] and s["entry"] in entries and s["juror"] in jurors
    ]
    return pd.DataFrame(rows, columns=["entry", "juror", "score"])


def standings(rnd, df):
    lo, hi = rnd["scale"]["min"], rnd["scale"]["max"]
    by_juror = df.groupby("juror")["score"]
    jmean, jsd, jn = by_juror.mean(), by_juror.std(ddof=1), by_juror.count()
    usable = [j for j in jmean.index if jn[j] >= 2 and jsd[j] > 0]
    centre = float(np.mean([jmean[j] for j in usable])) if usable else None
    spread = float(np.mean([jsd[j] for j in usable])) if usable else None
    out = []
    for entry in rnd["entries"]:
        mine = df[df["entry"] == entry["id"]]
        panel_mean = float(mine["score"].mean()) if len(mine) else None
        z = [(r.score - jmean[r.juror]) / jsd[r.juror] for r in mine.itertuples() if r.juror in usable]
        panel_mean_z = float(np.clip(centre + np.mean(z) * spread, lo, hi)) if z else None
        out.append(
            {
                "submission_id": entry["id"],
                "panel_mean": panel_mean,
                "panel_mean_z": panel_mean_z,
                "scores": int(len(mine)),
                "model_score": entry["model"],
            }
        )
    return out


def check_not_near_half(values, what):
    """Kappa rounds to whole points: a value a hair from .5 could round differently in Rust."""
    for v in values:
        frac = abs(v - math.floor(v) - 0.5)
        if 0 < frac < 1e-9:
            raise SystemExit(f"{what}: {v!r} is too close to a rounding boundary; change the data")


def model_vs_panel(model, panel, scale, exact_panel):
    out = {k: None for k in ["pearson", "spearman", "kendall", "mae_calibrated", "qwk", "calibration"]}
    n = len(model)
    if n < MIN_PAIRED or constant_values(model):
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns (and returns NaN) on constant input
        out["pearson"] = clean(stats.pearsonr(model, panel).statistic)
        out["spearman"] = clean(stats.spearmanr(model, panel).statistic)
        out["kendall"] = clean(stats.kendalltau(model, panel).statistic)
    slope, intercept = np.polyfit(model, panel, 1)
    out["calibration"] = {"slope": float(slope), "intercept": float(intercept)}
    calibrated = np.polyval([slope, intercept], model)
    out["mae_calibrated"] = float(np.mean(np.abs(calibrated - np.asarray(panel))))
    lo, hi = scale
    check_not_near_half(calibrated, "calibrated model")
    if not exact_panel:
        check_not_near_half(panel, "normalised panel mean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn divides 0 by 0 when both sides are one category
        out["qwk"] = clean(
            cohen_kappa_score(
                [whole_point(c, lo, hi) for c in calibrated],
                [whole_point(p, lo, hi) for p in panel],
                weights="quadratic",
                labels=list(range(lo, hi + 1)),
            )
        )
    return out


def inter_juror(df):
    jurors = int(df["juror"].nunique())
    wide = df.pivot_table(index="entry", columns="juror", values="score").dropna(axis=0, how="any")
    entries = int(len(wide)) if jurors else 0
    out = {"icc2_1": None, "icc2_k": None, "entries": entries, "jurors": jurors}
    if jurors < 2 or entries < MIN_PAIRED:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        icc = pingouin.intraclass_corr(
            data=df, targets="entry", raters="juror", ratings="score", nan_policy="omit"
        ).set_index("Type")["ICC"]
    single = icc["ICC(A,1)"] if "ICC(A,1)" in icc.index else icc["ICC2"]
    average = icc["ICC(A,k)"] if "ICC(A,k)" in icc.index else icc["ICC2k"]
    out["icc2_1"], out["icc2_k"] = clean(single), clean(average)
    return out


def juror_stats(rnd, df):
    out = []
    for juror in rnd["jurors"]:
        mine = df[df["juror"] == juror["id"]]
        scores = mine["score"].to_numpy()
        own, others = [], []
        for r in mine.itertuples():
            rest = df[(df["entry"] == r.entry) & (df["juror"] != juror["id"])]["score"]
            if len(rest):
                own.append(r.score)
                others.append(float(rest.mean()))
        vs = None
        if len(own) >= MIN_PAIRED:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                vs = clean(stats.spearmanr(own, others).statistic)
        out.append(
            {
                "juror_id": juror["id"],
                "juror": juror["name"],
                "n": int(len(scores)),
                "mean": float(np.mean(scores)) if len(scores) else None,
                "sd": float(np.std(scores, ddof=1)) if len(scores) >= 2 else None,
                "vs_others_spearman": vs,
            }
        )
    return out


def disagreements(ids, model, panel, threshold):
    if len(model) < 2 or constant_values(model) or constant_values(panel):
        return None  # undefined: the crate returns [] and a reason
    mz = (np.asarray(model) - np.mean(model)) / np.std(model, ddof=1)
    pz = (np.asarray(panel) - np.mean(panel)) / np.std(panel, ddof=1)
    found = [
        {"submission_id": i, "model_z": float(m), "panel_z": float(p)}
        for i, m, p in zip(ids, mz, pz)
        if abs(m - p) > threshold
    ]
    found.sort(key=lambda d: (-abs(d["model_z"] - d["panel_z"]), uuid.UUID(d["submission_id"])))
    return found


def top_by(values, n):
    scored = [(i, v) for i, v in values if v is not None]
    scored.sort(key=lambda iv: (-iv[1], uuid.UUID(iv[0])))
    return [i for i, _ in scored[:n]]


def agreement(rnd, df, table, normalise, threshold):
    key = "panel_mean" if normalise == "none" else "panel_mean_z"
    paired = [s for s in table if s["model_score"] is not None and s[key] is not None]
    ids = [s["submission_id"] for s in paired]
    model = [s["model_score"] for s in paired]
    panel = [s[key] for s in paired]
    scale = (rnd["scale"]["min"], rnd["scale"]["max"])
    found = disagreements(ids, model, panel, threshold)
    return {
        "n": len(paired),
        "normalise": normalise,
        "model_vs_panel": model_vs_panel(model, panel, scale, exact_panel=normalise == "none"),
        "inter_juror": inter_juror(df),
        "jurors": juror_stats(rnd, df),
        "disagreements": found or [],
        "disagreements_defined": found is not None,
        "threshold": threshold,
    }


def case(make):
    rnd, options = make()
    df = long_scores(rnd)
    table = standings(rnd, df)
    panel_top = top_by([(s["submission_id"], s["panel_mean"]) for s in table], TOP_N)
    model_top = top_by([(s["submission_id"], s["model_score"]) for s in table], TOP_N)
    return {
        "name": make.__name__,
        "description": " ".join(make.__doc__.split()),
        "round": rnd,
        "options": options,
        "expected": {
            "standings": table,
            "agreement": {
                mode: agreement(rnd, df, table, mode, options["threshold"]) for mode in ("none", "z")
            },
            "top": {
                "n": TOP_N,
                "panel": panel_top,
                "model": model_top,
                "recall": len(set(panel_top) & set(model_top)) / len(panel_top) if panel_top else None,
            },
        },
    }


def main():
    fixture = {
        "generated_by": "scripts/reference/jury_stats.py",
        "versions": {
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
            "pingouin": pingouin.__version__,
        },
        "cases": [case(make) for make in DATASETS],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, indent=1, allow_nan=False) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(fixture['cases'])} rounds")


if __name__ == "__main__":
    main()

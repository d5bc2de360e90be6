"""Ablation statistics with their noise: bootstrap intervals over documents, paired tests,
cornerstone detection, the paper's summary statistics, and cumulative removal curves.

Every number here comes from stored per-document results, so nothing here needs the model (scoring
new coalitions, e.g. cumulative removal, lives in `lsi.removal`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from lsi.errors import UserError
from lsi.estimators.agreement import kendall, spearman, top_k_precision
from lsi.game import Game
from lsi.players import single_removals
from lsi.results import estimate_value
from lsi.store import ScoreStore
from lsi.values import chance_level, document_values


@dataclass(frozen=True)
class CornerstoneRule:
    """A player is a cornerstone when removing it alone leaves less than `max_gap_left` of the gap
    between the full model and chance, and a one-sided paired test over documents says the drop is
    significant at `alpha` (McNemar's exact test on the documents whose correctness changed; a paired
    t-test for continuous values such as log-likelihoods). Where the full model is not clearly above
    chance (one-sided binomial test) there are none: drops are noise."""

    max_gap_left: float = 0.25
    alpha: float = 0.05

    def describe(self) -> str:
        return (
            f"removal leaves < {self.max_gap_left:.0%} of the (full - chance) gap and the per-document "
            "paired drop is significant (one-sided exact McNemar, a paired t-test for continuous values, "
            f"p < {self.alpha}); none where the full model is not clearly above chance"
        )


def bootstrap_mean_interval(
    per_doc: np.ndarray, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of a mean over documents, resampling documents."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_doc), size=(resamples, len(per_doc)))
    means = per_doc[idx].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def right_or_wrong(*values: np.ndarray) -> bool:
    """Whether per-document values are correctness (all 0 or 1) rather than a continuous value."""
    return all(np.isin(v, (0, 1)).all() for v in values)


def paired_drop_pvalue(full: np.ndarray, ablated: np.ndarray) -> float:
    """One-sided paired test that removal lowers the per-document value. Right/wrong values: exact
    McNemar (removal makes documents wrong more often than right). Continuous values (log-likelihoods,
    -log perplexity) carry no right/wrong, so the mean paired difference is t-tested instead."""
    if not right_or_wrong(full, ablated):
        diff = np.asarray(full, dtype=float) - np.asarray(ablated, dtype=float)
        if not np.any(diff != diff[0]):  # constant differences: no spread to test against
            return 0.0 if diff[0] > 0 else 1.0
        return float(stats.ttest_1samp(diff, 0.0, alternative="greater").pvalue)
    lost = int(np.sum((full == 1) & (ablated == 0)))
    gained = int(np.sum((full == 0) & (ablated == 1)))
    if lost + gained == 0:
        return 1.0
    return float(stats.binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue)


MIN_CORRECT = 30  # a task without choices is clear only with at least this many right answers


def above_chance(per_doc: np.ndarray, chance: float | None, alpha: float = 0.05) -> bool:
    """Whether a score is clearly above its floor; if not, ablations measure noise. Right/wrong values:
    a one-sided binomial test against chance, or, with a floor of 0 (exact match), at least
    MIN_CORRECT right answers; continuous values: a one-sided t-test against the floor."""
    if chance is None:
        return False
    if not (right_or_wrong(per_doc) and 0 <= chance <= 1):
        return bool(stats.ttest_1samp(per_doc, chance, alternative="greater").pvalue < alpha)
    hits = int(per_doc.sum())
    if chance == 0:
        return hits >= MIN_CORRECT
    return bool(stats.binomtest(hits, len(per_doc), chance, alternative="greater").pvalue < alpha)


def full_model_table(stores: pd.DataFrame) -> pd.DataFrame:
    """Each store (`lsi.results.store_index` rows) that holds the full model: its score on the store's
    metric, the chance level and whether it is clearly above it. A task counts as soon as its full
    model is scored, ablation or not: that is what says whether ablating it measures anything.
    Rows keep the index of their store's row."""
    rows, index = [], []
    for s in stores.itertuples():
        store = ScoreStore.open(s.path)
        frame = store.usable().set_index("coalition", drop=False)
        full_key = "1" * len(store.meta["players"])
        if full_key not in frame.index:
            continue
        docs = document_values(store.meta, frame.loc[full_key].to_dict(), s.metric)
        chance = chance_level(store.meta, s.metric)
        config = {k: getattr(s, k) for k in ("model", "family", "task", "granularity", "dtype", "limit")}
        rows.append(
            config
            | {"full": float(docs.mean()), "chance": chance, "above_chance": above_chance(docs, chance)}
        )
        index.append(s.Index)
    return pd.DataFrame(rows, index=index)


def ablation_table(
    store: ScoreStore,
    resamples: int = 1000,
    seed: int = 0,
    allow_nonfinite: bool = False,
    metric: str | None = None,
) -> pd.DataFrame:
    """Single-player ablation from the store: score, drop, their bootstrap intervals and paired p-values.

    `attrs` holds the full model's score and interval, the chance level and whether the full model is
    clearly above chance.
    """
    meta = store.meta
    players = meta["players"]
    metric = metric or meta["metric"]
    frame = store.usable(allow_nonfinite).set_index("coalition")
    full_key = "1" * len(players)
    singles = single_removals(len(players))
    missing = [c for c in [full_key, *singles] if c not in frame.index]
    if set(missing) & store.coalitions():
        raise UserError(
            f"coalition {missing[0]} of the ablation in {store.path} has non-finite log-likelihoods; "
            "rescore in bfloat16 or float32, or pass --allow-nonfinite"
        )
    if missing:
        raise UserError(f"the store {store.path} lacks the single-player ablation; run `lsi ablate` first")
    rows = frame.reset_index().set_index("coalition", drop=False)
    full_docs = document_values(meta, rows.loc[full_key].to_dict(), metric)
    single_docs = np.stack([document_values(meta, rows.loc[key].to_dict(), metric) for key in singles])
    chance = chance_level(meta, metric)
    empty = "0" * len(players)
    if chance is None and empty in rows.index:  # a continuous value's floor: the empty model's value
        chance = float(document_values(meta, rows.loc[empty].to_dict(), metric).mean())
    return ablation_from_documents(players, full_docs, single_docs, chance, metric, resamples, seed)


def ablation_from_documents(
    players: Sequence[str],
    full_docs: np.ndarray,
    single_docs: np.ndarray,
    chance: float | None,
    metric: str,
    resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """The ablation table from per-document values: the full model's (n_docs,) and each single
    removal's (n_players, n_docs), in player order. Any game with per-document values gets the same
    table, and so the same cornerstone rule, as a score store."""
    rows = []
    for i, (name, docs) in enumerate(zip(players, single_docs, strict=True)):
        low, high = bootstrap_mean_interval(docs, resamples, seed + i)
        drop_low, drop_high = bootstrap_mean_interval(full_docs - docs, resamples, seed + i)
        rows.append(
            {
                "player": name,
                "kind": name.partition(".")[0],
                "block": int(name.partition(".")[2]),
                "score": docs.mean(),
                "score_low": low,
                "score_high": high,
                "drop": full_docs.mean() - docs.mean(),
                "drop_low": drop_low,
                "drop_high": drop_high,
                "p_value": paired_drop_pvalue(full_docs, docs),
            }
        )
    table = pd.DataFrame(rows)
    table.attrs.update(
        full=float(full_docs.mean()),
        full_interval=bootstrap_mean_interval(full_docs, resamples, seed),
        chance=chance,
        above_chance=above_chance(full_docs, chance),
        metric=metric,
        n_docs=len(full_docs),
    )
    return table


def game_cornerstones(metric_game: Game) -> set[int]:
    """A game's cornerstones by the package's rule (above-chance check included), from its full and
    single-removal coalitions; judged on the task's metric, whatever value an estimator sees."""
    n = metric_game.n_players
    docs = metric_game.doc_values(np.vstack([np.ones((1, n), dtype=bool), ~np.eye(n, dtype=bool)]))
    table = ablation_from_documents(metric_game.names, docs[0], docs[1:], metric_game.chance, "score")
    return set(np.flatnonzero(cornerstones(table)["cornerstone"].to_numpy()).tolist())


def cornerstones(table: pd.DataFrame, rule: CornerstoneRule = CornerstoneRule()) -> pd.DataFrame:
    """The ablation table with `gap_left` and `cornerstone` columns, per the rule."""
    full, chance = table.attrs["full"], table.attrs["chance"]
    gap = full - chance
    out = table.copy()
    out["gap_left"] = (out["score"] - chance) / gap if gap > 0 else np.nan
    # Below or at chance, every drop is noise: no cornerstones there.
    clear = gap > 0 and table.attrs["above_chance"]
    out["cornerstone"] = (out["gap_left"] < rule.max_gap_left) & (out["p_value"] < rule.alpha) & clear
    out.attrs.update(table.attrs, rule=asdict(rule), rule_text=rule.describe())
    return out


def summary_statistics(flagged: pd.DataFrame, shapley: Sequence[float] | None = None) -> dict:
    """The paper's statistics: mean drop of cornerstone vs other removals, and (given Shapley values)
    the share of positive Shapley mass each group holds."""
    corner = flagged["cornerstone"].to_numpy()
    out = {
        "cornerstones": flagged.loc[corner, "player"].tolist(),
        "mean_drop_cornerstone": float(flagged.loc[corner, "drop"].mean()) if corner.any() else None,
        "mean_drop_other": float(flagged.loc[~corner, "drop"].mean()) if (~corner).any() else None,
        "full": flagged.attrs["full"],
        "chance": flagged.attrs["chance"],
        "above_chance": flagged.attrs["above_chance"],
        "rule": flagged.attrs["rule_text"],
    }
    if shapley is not None:
        positive = np.clip(np.asarray(shapley, dtype=float), 0, None)
        total = positive.sum()
        out["positive_mass_share_cornerstone"] = float(positive[corner].sum() / total) if total > 0 else None
        out["positive_mass_share_other"] = float(positive[~corner].sum() / total) if total > 0 else None
    return out


def removal_orders(values: Sequence[float], names: Sequence[str], seed: int = 0) -> dict[str, list[str]]:
    """Orders for cumulative removal: least important first, most important first, and random."""
    ranked = [names[i] for i in np.argsort(values, kind="stable")]
    shuffled = list(names)
    np.random.default_rng(seed).shuffle(shuffled)
    return {"ascending": ranked, "descending": ranked[::-1], "random": shuffled}


def cornerstone_report(
    stores: pd.DataFrame,
    estimates: pd.DataFrame,
    rule: CornerstoneRule = CornerstoneRule(),
    estimator: str = "window",
    sampler: str = "kernelshap",
    resamples: int = 1000,
    ablations: Mapping[Path, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The paper's statistics and claims for every store holding a single-player ablation (a row each).

    `stores` and `estimates` are `lsi.results.store_index` / `estimate_index` tables. The Shapley mass
    shares use the latest all-player `estimator` estimate of the metric, where the store has one; the
    claim columns compare the `window` ranking with the cornerstones and with `sampler`'s ranking.
    `ablations` holds `ablation_table`s already computed, by store path (their bootstrap is the slow part).
    """
    rows = []
    for s in stores[stores["has_ablation"]].itertuples():
        table = ablations[s.path] if ablations else ablation_table(ScoreStore.open(s.path), resamples)
        flagged = cornerstones(table, rule)
        players = flagged["player"].tolist()
        shapley = _values(latest_estimate(estimates, s.path, estimator, s.metric, players))
        window_record = latest_estimate(estimates, s.path, "window", s.metric, players)
        window = _values(window_record)
        cost = None if window_record is None else window_record["evaluations"]
        sampled = _values(latest_estimate(estimates, s.path, sampler, s.metric, players, cost))  # equal cost
        corner = flagged[flagged["cornerstone"]]
        others = flagged[~flagged["cornerstone"]]
        stats = summary_statistics(flagged, shapley)
        rows.append(
            {
                "model": s.model,
                "task": s.task,
                "granularity": s.granularity,
                "dtype": s.dtype,
                "limit": s.limit,
                "n_docs": s.n_docs,
                "metric": s.metric,
                "moe": s.moe,
                "n_blocks": int(flagged["block"].max()) + 1,
                "max_drop": float(flagged["drop"].max()),
                "top_player": flagged.loc[flagged["drop"].idxmax(), "player"],
                "deepest_cornerstone_block": int(corner["block"].max()) if len(corner) else None,
                "max_cornerstone_score": float(corner["score"].max()) if len(corner) else None,
                # Claim 3: the share of cornerstone removals not clearly above chance (interval reaches it).
                "collapsed_share": float((corner["score_low"] <= table.attrs["chance"]).mean())
                if len(corner)
                else None,
                "max_drop_other": float(others["drop"].max()) if len(others) else None,
                # Of the window estimate's top |C| players, the share that are cornerstones.
                "window_top_precision": top_k_precision(window, flagged["cornerstone"], len(corner))
                if window and len(corner)
                else None,
                f"spearman_window_{sampler}": spearman(window, sampled) if window and sampled else None,
                "shapley_estimator": estimator if shapley is not None else None,
            }
            | {k: v for k, v in stats.items() if k != "rule"}
        )
    report = pd.DataFrame(rows)
    report.attrs["rule"] = rule.describe()
    return report


def estimate_agreement(estimates: pd.DataFrame, value: str = "score", top: int = 5) -> pd.DataFrame:
    """Rank agreement of every pair of all-player estimates of one store (Spearman, Kendall, top-k overlap).

    Where an estimator ran at one budget with several seeds, the mean of those runs is added as a
    pooled estimate: the closest thing to a converged reference that a study can afford, and the
    agreement between the seeds says how far from converged each run is.
    """
    if estimates.empty:
        return pd.DataFrame()
    rows = []
    chosen = estimates[(estimates["value"] == value) & estimates["restricted_to"].isna()]
    for _, group in chosen.groupby("store", sort=True):
        players = list(group.iloc[0]["players"])
        group = group[[list(p) == players for p in group["players"]]].sort_values("created")
        ranked = {_label(r): np.asarray(r.values, dtype=float) for r in group.itertuples()}  # latest wins
        sampled = group[group["seed"].notna()]
        for (estimator, budget), runs in sampled.groupby(["estimator", "budget"]):
            labels = list(dict.fromkeys(_label(r) for r in runs.itertuples()))  # one per seed
            if len(labels) > 1:
                pooled = np.mean([ranked[label] for label in labels], axis=0)
                ranked[f"{estimator} b{int(budget)} mean of {len(labels)} seeds"] = pooled
        first = group.iloc[0]
        for a, b in itertools.combinations(ranked, 2):
            x, y = ranked[a], ranked[b]
            rows.append(
                {
                    "model": first["model"],
                    "task": first["task"],
                    "granularity": first["granularity"],
                    "dtype": first["dtype"],
                    "limit": first["limit"],
                    "players": len(players),
                    "a": a,
                    "b": b,
                    "spearman": spearman(x, y),
                    "kendall": kendall(x, y),
                    f"top{top}_overlap": top_k_precision(x, y, top),
                }
            )
    return pd.DataFrame(rows)


def _label(record: object) -> str:
    """`window`, or `kernelshap b360 s1`: an estimate's estimator, budget and seed."""
    if pd.isna(record.seed):
        return str(record.estimator)
    return f"{record.estimator} b{int(record.budget)} s{int(record.seed)}"


def latest_estimate(
    estimates: pd.DataFrame,
    store_path: object,
    estimator: str,
    metric: str,
    players: list[str] | None = None,
    budget: int | None = None,
) -> pd.Series | None:
    """The store's latest full-game estimate by `estimator` of the score of `metric` (of these `players`
    and at `budget` coalitions, where given); `estimates` is `lsi.results.estimate_index`."""
    if estimates.empty:
        return None
    match = estimates[
        (estimates["store"] == store_path)
        & (estimates["estimator"] == estimator)
        & (estimates["metric"] == metric)
        & estimates["value"].isin(["score", estimate_value("score", metric)])
        & estimates["restricted_to"].isna()
    ]
    if budget is not None:
        match = match[match["budget"] == budget]
    if players is not None:
        match = match[[list(p) == players for p in match["players"]]]
    return None if match.empty else match.sort_values("created").iloc[-1]


def _values(record: pd.Series | None) -> list[float] | None:
    return None if record is None else list(record["values"])


def estimator_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """An estimator benchmark's rows (one per estimator, budget and seed) as medians over seeds per
    (estimator, budget), with the quartiles of the rank correlations and the MSE (`*_q25`, `*_q75`)
    and the cornerstone recovery rate over the seeds where it is defined, and how many seeds each
    median is over (`seeds`: one scored in stretches may have fewer at its largest budgets). Columns
    a benchmark did not record (older tables lack `layer_forwards` and `top5_precision`; only
    tables against a walk reference have `spearman_corrected`) are left out."""
    groups = frame.groupby(["estimator", "budget"])
    medians = [
        "evaluations",
        "layer_forwards",
        "mse",
        "spearman",
        "spearman_corrected",
        "kendall",
        "top3_precision",
        "top5_precision",
    ]
    summary = groups[[c for c in medians if c in frame]].median()
    summary.insert(0, "seeds", groups["seed"].nunique())
    for metric in ("spearman", "kendall", "mse"):
        for q in (25, 75):
            summary[f"{metric}_q{q}"] = groups[metric].quantile(q / 100)
    summary["cornerstones_recovered"] = groups["cornerstones_recovered"].agg(
        lambda s: s.dropna().astype(float).mean()
    )
    return summary.reset_index()


def dtype_agreement(stores: pd.DataFrame, reference: str = "float32") -> pd.DataFrame:
    """How much a cheaper dtype changes the answers: for every store with a `reference`-dtype twin
    (same model, task, granularity, limit), the documents whose correctness differs per shared
    coalition, and the largest score difference."""
    key = ["model", "task", "granularity", "limit"]
    references = stores[stores["dtype"] == reference].set_index(key)
    rows = []
    for s in stores[stores["dtype"] != reference].itertuples():
        twin = tuple(getattr(s, k) for k in key)
        if twin in references.index:
            rows.append(
                dict(zip(key, twin, strict=True))
                | {"dtype": s.dtype, "reference": reference}
                | _answer_changes(references.loc[twin, "path"], s.path, s.metric)
            )
    return pd.DataFrame([r for r in rows if r["coalitions"]])


def limit_agreement(stores: pd.DataFrame) -> pd.DataFrame:
    """Whether a later stage reproduces an earlier one: for every store with a smaller-limit twin
    (same model, task, granularity, dtype), the answers on the documents both hold (the first ones:
    lm-eval's limit takes documents in order). Stages scored on different machines (CPU, a lent GPU)
    differ only in computation order, so in bfloat16 a few near-tie documents may flip."""
    key = ["model", "task", "granularity", "dtype"]
    reach = stores["limit"].astype(float).fillna(np.inf)  # no limit: every document, after any limit
    rows = []
    for i, s in enumerate(stores.itertuples()):
        earlier = stores[(stores[key] == [getattr(s, k) for k in key]).all(axis=1) & (reach < reach.iloc[i])]
        for e in earlier.itertuples():
            rows.append(
                {k: getattr(s, k) for k in key}
                | {"limit": s.limit, "reference_limit": e.limit}
                | _answer_changes(e.path, s.path, s.metric)
            )
    return pd.DataFrame([r for r in rows if r["coalitions"]])


def _answer_changes(reference: Path, other: Path, metric: str) -> dict:
    """Documents whose correctness differs between two stores, per coalition both hold, over the
    documents both hold, and the largest difference of the mean score there."""
    ref = ScoreStore.open(reference).frame().set_index("coalition")
    oth = ScoreStore.open(other).frame().set_index("coalition")
    shared = ref.index.intersection(oth.index)
    column = f"doc_{metric}"
    if shared.empty:
        return {"coalitions": 0}
    n_docs = min(len(ref.at[shared[0], column]), len(oth.at[shared[0], column]))
    a = np.array([np.asarray(ref.at[c, column], dtype=float)[:n_docs] for c in shared])
    b = np.array([np.asarray(oth.at[c, column], dtype=float)[:n_docs] for c in shared])
    flips = (a != b).sum(axis=1)
    return {
        "coalitions": len(shared),
        "n_docs": n_docs,
        "mean_flips": float(flips.mean()),
        "max_flips": int(flips.max()),
        "max_score_diff": float(np.abs(a.mean(axis=1) - b.mean(axis=1)).max()),
    }

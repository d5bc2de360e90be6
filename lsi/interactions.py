"""Pairwise Shapley interactions between players of a game small enough to enumerate (2^n coalitions),
computed exactly by shapiq's `ExactComputer`.

k-SII of order 2 (Bord et al. 2023) splits the game's value into the players' main effects and pairs'
interactions that sum to v(N) - v(empty); a negative pair is redundant (each does part of the
other's work), a positive pair complementary. They answer why an estimator that only removes
neighbours (the paper's window) ranks a player where it does.

Games too large to enumerate get order-2 FSII from the permutation walks already in their store
(`reference_interactions`; see the section below).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm
from shapiq import ExactComputer

from lsi.errors import UserError
from lsi.estimators.permutation import removal_walks
from lsi.estimators.regression import Polynomial, polynomial_design
from lsi.game import Game
from lsi.references import reference_game, stored_pairs, walk_runs

INDICES = ("k-SII", "FSII", "STII")


def pairwise_interactions(game: Game, index: str = "k-SII") -> tuple[pd.Series, pd.DataFrame]:
    """(main effects, symmetric matrix of pair interactions) of an order-2 index, exactly."""
    if index not in INDICES:
        raise ValueError(f"unknown interaction index {index!r}; choose one of {', '.join(INDICES)}")
    computer = ExactComputer(
        lambda coalitions: game.value(np.asarray(coalitions, dtype=bool)), game.n_players
    )
    values = computer(index=index, order=2)
    names = list(game.names)
    main = pd.Series([values[(i,)] for i in range(game.n_players)], index=names, name=index)
    matrix = pd.DataFrame(np.zeros((game.n_players, game.n_players)), index=names, columns=names)
    for i in range(game.n_players):
        for j in range(i + 1, game.n_players):
            matrix.iloc[i, j] = matrix.iloc[j, i] = values[(i, j)]
    return main, matrix


def by_distance(matrix: pd.DataFrame) -> pd.DataFrame:
    """Mean |interaction| of the pairs at each distance in player order: are neighbours the ones that
    interact?"""
    n = len(matrix)
    rows = [
        {"distance": d, "pairs": n - d, "mean_abs": float(np.mean(np.abs(np.diag(matrix.to_numpy(), d))))}
        for d in range(1, n)
    ]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- large games, from permutation walks
#
# A game of 30-60 players cannot be enumerated, but its score store holds the antithetic permutation
# walks of its reference Shapley values. The order-2 Faithful Shapley Interaction index (FSII, Tsai,
# Yeh & Ravikumar 2023) is the Shapley-kernel weighted least-squares best polynomial of degree 2 through
# v(empty) and v(N), read in the 0/1 (Moebius) basis. A walk visits exactly one coalition of each size,
# uniformly within the size, so a coalition S turns up 1/binom(n, |S|) times per walk on average;
# weighting each visit by kernel(S) binom(n, |S|), proportional to 1/(|S| (n - |S|)), makes the walks'
# weighted squared error a consistent estimate of the kernel-weighted one, and the fit consistent for
# the exact FSII as the walks grow (tests: the enumerated games and synthetic ones).


@dataclass(frozen=True)
class FaithfulFit:
    """Order-2 FSII of one game (main effects, symmetric pair matrix) with two standard errors: over
    the walk pairs (delete-one jackknife: how far from the exact FSII of these documents) and over
    documents (how far from another sample of documents)."""

    main: np.ndarray
    pairs: np.ndarray
    main_se: np.ndarray
    pairs_se: np.ndarray
    main_doc_se: np.ndarray
    pairs_doc_se: np.ndarray
    info: dict

    @property
    def pairs_z(self) -> np.ndarray:
        """Pair / its combined standard error (both sources, as independent)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.pairs / np.hypot(self.pairs_se, np.nan_to_num(self.pairs_doc_se))


def _moebius(polynomial: Polynomial, n: int) -> tuple[np.ndarray, np.ndarray]:
    """FSII (main, pairs) of a degree-2 polynomial in +-1 coding: with s = 2x - 1, c_ij s_i s_j =
    4 c_ij x_i x_j - 2 c_ij (x_i + x_j) + c_ij."""
    (singles, pairs), (c_single, c_pair) = polynomial.terms, polynomial.coefficients
    matrix = np.zeros((n, n))
    matrix[pairs[:, 0], pairs[:, 1]] = 4 * c_pair
    matrix += matrix.T
    main = np.zeros(n)
    main[singles[:, 0]] = 2 * c_single
    return main - matrix.sum(axis=1) / 2, matrix


def faithful_interactions(
    coalitions: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    clusters: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> FaithfulFit:
    """Order-2 FSII by the weighted regression over the given coalitions, which must include the empty
    and the full one (its constraints). `values` is (rows,) or (rows, documents), the game's value being
    the mean over documents; `clusters` labels independent sampling units (walk pairs) for the jackknife.

    One Gram matrix serves every document and, by Woodbury updates, every left-out cluster."""
    coalitions = np.asarray(coalitions, dtype=bool)
    docs = np.asarray(values, dtype=float).reshape(len(coalitions), -1)
    n = coalitions.shape[1]
    sizes = coalitions.sum(axis=1)
    empty, full = docs[sizes == 0][0], docs[sizes == n][0]
    inner = (sizes > 0) & (sizes < n)
    design = polynomial_design(coalitions[inner], 2)
    pairs = design.terms[1]
    keep = np.r_[
        np.ones(len(pairs), dtype=bool) if allowed is None else allowed[pairs[:, 0], pairs[:, 1]],
        np.ones(n, dtype=bool),
    ]
    root = np.sqrt(np.asarray(weights, dtype=float)[inner])
    x = root[:, None] * design.matrix[:, keep]
    y = root[:, None] * design.target(docs[inner], empty, full)
    gram = x.T @ x
    eigen = np.linalg.eigvalsh(gram)[1:]  # the lowest is the odd block's shift, 0 by construction
    if eigen[0] <= 1e-10 * eigen[-1]:
        raise UserError(
            f"{int(inner.sum())} coalitions do not identify {x.shape[1]} FSII terms of {n} players: "
            "more walks, or fewer allowed pairs"
        )
    shift = np.r_[np.zeros(keep[: design.n_even].sum()), np.ones(n)]
    inverse = np.linalg.inv(gram + np.outer(shift, shift))
    u = inverse @ (x.T @ y)

    def fsii(u_kept: np.ndarray, e: float, f: float) -> np.ndarray:
        u_one = np.zeros(keep.size)
        u_one[keep] = u_kept
        main, matrix = _moebius(design.polynomial(u_one, e, f), n)
        return np.concatenate([main, matrix[np.triu_indices(n, 1)]])

    estimate = fsii(u.mean(axis=1), empty.mean(), full.mean())
    per_doc = np.array([fsii(u[:, d], empty[d], full[d]) for d in range(docs.shape[1])])
    doc_se = per_doc.std(axis=0, ddof=1) / np.sqrt(len(per_doc)) if len(per_doc) > 1 else np.nan * estimate
    walk_se = np.full_like(estimate, np.nan)
    labels = np.unique(clusters[inner]) if clusters is not None else []
    if len(labels) > 1:
        rhs, y_mean = x.T @ y.mean(axis=1), y.mean(axis=1)
        replicates = []
        for label in labels:
            rows = clusters[inner] == label
            xc, yc = x[rows], y_mean[rows]
            left = rhs - xc.T @ yc
            c = xc @ inverse  # Woodbury: (A - X'X)^-1 = A^-1 + C' (I - C X')^-1 C
            base = inverse @ left
            u_c = base + c.T @ np.linalg.solve(np.eye(len(xc)) - c @ xc.T, c @ left)
            replicates.append(fsii(u_c, empty.mean(), full.mean()))
        replicates = np.array(replicates)
        spread = replicates - replicates.mean(axis=0)
        walk_se = np.sqrt((len(labels) - 1) / len(labels) * (spread**2).sum(axis=0))
    upper = np.triu_indices(n, 1)

    def split(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        matrix = np.zeros((n, n))
        matrix[upper] = flat[n:]
        return flat[:n], matrix + matrix.T

    info = {
        "rows": int(inner.sum()),
        "features": int(x.shape[1]),
        "clusters": len(labels),
        "documents": docs.shape[1],
        "condition": float(np.sqrt(eigen[-1] / eigen[0])),
    }
    return FaithfulFit(*split(estimate), *split(walk_se), *split(doc_se), info=info)


def walk_design(orders: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coalitions, weights, walk-pair labels) of antithetic removal walks: each order and its reverse,
    every visit weighted by kernel / (visits per walk) ~ 1/(|S| (n - |S|)); the ends are constraints."""
    n = len(orders[0])
    coalitions = np.concatenate([removal_walks(np.asarray(o)).reshape(-1, n) for o in orders])
    sizes = coalitions.sum(axis=1)
    ends = (sizes == 0) | (sizes == n)
    weights = np.where(ends, 0.0, 1.0 / np.where(ends, 1, sizes * (n - sizes)))
    return coalitions, weights, np.repeat(np.arange(len(orders)), 2 * (n + 1))


def walk_interactions(game: Game, orders: Sequence[np.ndarray]) -> FaithfulFit:
    """FSII of `game` from the coalitions of these walk pairs alone (per document when it has them)."""
    coalitions, weights, clusters = walk_design(orders)
    values = game.doc_values(coalitions)
    values = game.value(coalitions) if values is None else values
    return faithful_interactions(coalitions, values, weights, clusters)


def reference_interactions(
    reference: Path, value: str, root: Path = Path(".")
) -> tuple[FaithfulFit, list[str]]:
    """FSII of a reference game (`results/references/*.json`: its store and walk runs) for `value`,
    from the store alone (no model)."""
    record, game = reference_game(reference, value, root)
    return walk_interactions(game, stored_pairs(game, walk_runs(record))[1]), list(game.names)


def significant(z: np.ndarray, rate: float = 0.05) -> np.ndarray:
    """Benjamini-Hochberg at false-discovery `rate` over the upper triangle of a matrix of z-scores
    (two-sided normal p-values): 1,770 pairs need a multiple-testing rule, not |z| > 2."""
    upper = np.triu_indices(len(z), 1)
    p = 2 * norm.sf(np.abs(z[upper]))
    order = np.argsort(p)
    passed = p[order] <= rate * np.arange(1, p.size + 1) / p.size
    keep = np.zeros(p.size, dtype=bool)
    keep[order[: (np.flatnonzero(passed).max() + 1) if passed.any() else 0]] = True
    mask = np.zeros(z.shape, dtype=bool)
    mask[upper] = keep
    return mask | mask.T


def pair_table(fit: FaithfulFit, names: Sequence[str], mask: np.ndarray) -> pd.DataFrame:
    """Every pair with its FSII, both standard errors, z and whether it survives `significant`."""
    i, j = np.triu_indices(len(names), 1)
    return pd.DataFrame(
        {
            "a": np.asarray(names)[i],
            "b": np.asarray(names)[j],
            "distance": j - i,
            "fsii": fit.pairs[i, j],
            "se_walks": fit.pairs_se[i, j],
            "se_documents": fit.pairs_doc_se[i, j],
            "z": fit.pairs_z[i, j],
            "significant": mask[i, j],
        }
    )


def walk_tables(fit: FaithfulFit, names: Sequence[str], player: str = "attn.0") -> dict[str, pd.DataFrame]:
    """The large game's tables: the distance profile (mean |FSII| beside the mean standard error, which
    sets the floor that noise alone reaches), the pairs that pass `significant` (else the ten largest
    |z|), and `player`'s pairs."""
    mask = significant(fit.pairs_z)
    table = pair_table(fit, names, mask)
    table["abs"] = table["fsii"].abs()
    profile = (
        table.groupby("distance")
        .agg(
            pairs=("fsii", "size"),
            mean_abs=("abs", "mean"),
            mean=("fsii", "mean"),
            mean_se_walks=("se_walks", "mean"),
            significant=("significant", "sum"),
        )
        .reset_index()
    )
    table = table.drop(columns="abs")
    top = table[table["significant"]] if mask.any() else table.loc[table["z"].abs().nlargest(10).index]
    own = table[(table["a"] == player) | (table["b"] == player)].sort_values("distance")
    return {"by-distance": profile, "pairs": top, player: own}

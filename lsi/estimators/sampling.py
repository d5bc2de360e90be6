"""Complement-paired coalition samples and their weights, shared by `leverage`, `polyshap` and
`regression_msr`, so that the three see the same coalitions for the same budget and seed.

A sampling unit is a coalition together with its complement (`paired`), or one coalition. Units
fall into classes by size: paired, class s holds the coalitions of sizes s and n-s (s < n/2; at
s = n/2 a unit is a set of size n/2 and its complement). Classes get sampling mass in proportion to
the leverage scores of the Shapley regression, 1/binom(n, |S|) per coalition (Musco & Witter 2025),
so every size 1..n-1 carries the same mass: a size drawn uniformly, then a uniform subset of it.
v(empty) and v(N) are always evaluated first, outside the units.

Each sampled row carries a `share`: sum_k share_k g(S_k) is an unbiased estimate of
sum_{0<|S|<n} g(S) / binom(n, |S|), the sum over sizes of the mean over each size. The Shapley
kernel and the MSR coefficients both scale as 1/binom(n, |S|) times a function of |S|, so both
estimators weight rows by their share.
"""

from __future__ import annotations

import warnings
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import combinations
from math import comb

import numpy as np

from lsi.game import coalition_keys


@dataclass(frozen=True)
class Classes:
    """The sampling classes of n players: smallest size, units held, leverage mass."""

    n: int
    paired: bool
    sizes: np.ndarray
    capacity: np.ndarray  # float, as binom(n, n/2) overflows int64 beyond n = 66
    mass: np.ndarray

    @property
    def cost(self) -> int:
        """Coalitions per unit."""
        return 2 if self.paired else 1

    def share(self, k: int, units: float | np.ndarray) -> float | np.ndarray:
        """Share of each row of class k when `units` of its units stand for all of them: capacity /
        units per unit (Horvitz-Thompson), over binom(n, size) coalitions of the row's size;
        capacity / binom(n, size) is 1, or 1/2 for the paired middle class."""
        return (0.5 if self.paired and 2 * self.sizes[k] == self.n else 1.0) / units


def classes(n: int, paired: bool = True) -> Classes:
    sizes = np.arange(1, n // 2 + 1) if paired else np.arange(1, n)
    middle = paired & (2 * sizes == n)
    capacity = np.array([comb(n, int(s)) for s in sizes], dtype=float)
    capacity[middle] /= 2
    mass = np.where(paired & ~middle, 2.0, 1.0)  # a paired class below n/2 covers two sizes
    return Classes(n, paired, sizes, capacity, mass)


@dataclass(frozen=True)
class CoalitionSample:
    """Rows to evaluate: empty, full, then the units (a coalition and then its complement).

    `share`: see the module docstring (1/binom(n, |S|) for a coalition every one of whose size-mates
    was evaluated too; 0 for the empty and full rows, which enter through the efficiency constraint).
    `fold`: -1 for rows known exactly (empty, full, enumerated classes), else the half of the
    independent draws the row came from (`draw_units` only; `sample_units` gives -1 or 0).
    """

    coalitions: np.ndarray
    share: np.ndarray
    fold: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def sizes(self) -> np.ndarray:
        return self.coalitions.sum(axis=1)


def allocate(capacity: np.ndarray, mass: np.ndarray, units: float, keep: int = 0) -> tuple[np.ndarray, float]:
    """Water-filling: classes whose share of `units` (in proportion to mass) reaches their capacity are
    taken whole, repeatedly (shapiq's border trick). Returns the mask of whole classes and the units
    left to the others; with `keep`, stops before leaving fewer than `keep` units to classes not whole."""
    whole = np.zeros(capacity.size, dtype=bool)
    left = float(units)
    while (~whole).any():
        rate = left / mass[~whole].sum()
        newly = ~whole & (rate * mass >= capacity)
        if not newly.any():
            break
        after = left - capacity[newly].sum()
        if (~whole & ~newly).any() and after < keep:
            break
        whole |= newly
        left = after
    return whole, left


def unit_counts(
    capacity: np.ndarray, mass: np.ndarray, units: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Units per class: the water-filled allocation (`allocate`), its fractional counts rounded
    systematically (one uniform offset) with the total held; also the mask of classes taken whole."""
    whole, left = allocate(capacity, mass, units)
    counts = np.where(whole, capacity, 0).astype(np.int64)
    rest = np.flatnonzero(~whole)
    if rest.size:
        cumulative = np.cumsum(left * mass[rest] / mass[rest].sum())
        cumulative[-1] = round(left)
        edges = np.floor(np.concatenate([[0.0], cumulative]) + rng.random())
        counts[rest] = np.diff(edges).astype(np.int64)
    return counts, whole


def _unit_row(members: tuple[int, ...] | np.ndarray, n: int, canonical: bool) -> np.ndarray:
    row = np.zeros(n, dtype=bool)
    row[list(members)] = True
    return ~row if canonical and not row[0] else row  # a middle-class unit starts with the set holding 0


def class_units(
    rng: np.random.Generator,
    cl: Classes,
    k: int,
    count: int,
    distinct: bool,
    exclude: AbstractSet[bytes] = frozenset(),
) -> np.ndarray:
    """(count, n) first coalitions of `count` uniform units of class k, distinct if `distinct`, none of
    them in `exclude` (`coalition_keys` of coalitions already known; closed under complement when the
    classes are paired, so testing a unit's first coalition tests both)."""
    n, size = cl.n, int(cl.sizes[k])
    canonical = cl.paired and 2 * size == n
    taken = sum(key.count(b"1") == size for key in exclude) / (2 if canonical else 1)
    if distinct and count > (cl.capacity[k] - taken) / 2:  # a small class (under twice the budget): enumerate
        every = (
            [(0, *rest) for rest in combinations(range(1, n), size - 1)]
            if canonical
            else list(combinations(range(n), size))
        )
        rows = np.array([_unit_row(members, n, canonical) for members in every]).reshape(-1, n)
        if exclude:
            rows = rows[[key not in exclude for key in coalition_keys(rows)]]
        return rows[rng.choice(len(rows), size=count, replace=False)]
    rows, seen = [], set(exclude)
    while len(rows) < count:
        row = _unit_row(rng.choice(n, size=size, replace=False), n, canonical)
        key = coalition_keys(row[None])[0]
        if distinct and key in seen:
            continue
        seen.add(key)
        rows.append(row)
    return np.array(rows, dtype=bool).reshape(count, n)


def with_complements(first: np.ndarray, paired: bool = True) -> np.ndarray:
    """Each row followed by its complement (when `paired`)."""
    if not paired:
        return first
    return np.stack([first, ~first], axis=1).reshape(-1, first.shape[1])


def _ends(n: int) -> np.ndarray:
    return np.stack([np.zeros(n, dtype=bool), np.ones(n, dtype=bool)])


def sample_units(n: int, budget: int, seed: int, paired: bool = True) -> CoalitionSample:
    """Leverage-score sampling WITHOUT replacement, at most `budget` distinct coalitions.

    The paper keeps each unit independently with probability min(1, c * leverage); here the count per
    class is fixed instead (the water-filled expectation, randomly rounded with the total held), so the
    budget is never exceeded, and each class's units are a uniform sample of it, weighted by
    capacity / count (Horvitz-Thompson within the class)."""
    rng = np.random.default_rng(seed)
    cl = classes(n, paired)
    units = max(min(budget, 2**n) - 2, 0) // cl.cost
    counts, whole = unit_counts(cl.capacity, cl.mass, units, rng)
    rows, shares = [_ends(n)], [np.zeros(2)]
    for k in np.flatnonzero(counts):
        first = class_units(rng, cl, k, int(counts[k]), distinct=True)
        block = with_complements(first, paired)
        rows.append(block)
        shares.append(np.full(len(block), cl.share(k, counts[k])))
    coalitions = np.concatenate(rows)
    share = np.concatenate(shares)
    return CoalitionSample(
        coalitions=coalitions,
        share=share,
        fold=np.where(np.isin(coalitions.sum(axis=1), _whole_sizes(cl, whole)), -1, 0),
        info={
            "pairing": paired,
            "units": int(counts.sum()),
            "enumerated_sizes": _whole_sizes(cl, whole).tolist(),
            "units_per_class": {int(s): int(c) for s, c in zip(cl.sizes, counts, strict=True)},
        },
    )


def _whole_sizes(cl: Classes, whole: np.ndarray) -> np.ndarray:
    small = cl.sizes[whole]
    return np.unique(np.concatenate([[0, cl.n], small, cl.n - small if cl.paired else small]))


def draw_units(n: int, budget: int, seed: int, paired: bool = True, min_draws: int = 2) -> CoalitionSample:
    """Leverage-score sampling WITH replacement, for unbiased Monte Carlo: classes whose expected draws
    reach their capacity are enumerated (known exactly, fold -1), the remaining units are independent
    draws, split into two halves (folds 0 and 1); each fold's shares make its own unbiased estimate of
    the classes not enumerated. At most `budget` distinct coalitions (repeats are free)."""
    rng = np.random.default_rng(seed)
    cl = classes(n, paired)
    units = max(min(budget, 2**n) - 2, 0) // cl.cost
    whole, left = allocate(cl.capacity, cl.mass, units, keep=min_draws)
    rest = np.flatnonzero(~whole)
    draws = int(round(left)) if rest.size else 0
    rows, shares, folds = [_ends(n)], [np.zeros(2)], [np.full(2, -1)]
    for k in np.flatnonzero(whole):
        every = class_units(rng, cl, k, int(cl.capacity[k]), distinct=True)
        block = with_complements(every, paired)
        rows.append(block)
        shares.append(np.full(len(block), cl.share(k, cl.capacity[k])))
        folds.append(np.full(len(block), -1))
    if draws:
        probability = cl.mass[rest] / cl.mass[rest].sum()
        drawn = rest[rng.choice(rest.size, size=draws, p=probability)]
        halves = np.arange(draws) >= draws // 2
        sizes = np.array([draws // 2, draws - draws // 2])
        for k in np.unique(drawn):
            where = np.flatnonzero(drawn == k)
            block = with_complements(class_units(rng, cl, k, where.size, distinct=False), paired)
            fold = np.repeat(halves[where].astype(int), cl.cost)
            # a unit is drawn with probability q_k / capacity_k: as if q_k * (draws of its fold) units
            # of class k had been sampled
            q = probability[np.flatnonzero(rest == k)[0]]
            rows.append(block)
            shares.append(cl.share(k, q * sizes[fold]))
            folds.append(fold)
    return CoalitionSample(
        coalitions=np.concatenate(rows),
        share=np.concatenate(shares),
        fold=np.concatenate(folds),
        info={
            "pairing": paired,
            "draws": draws,
            "enumerated_sizes": _whole_sizes(cl, whole).tolist(),
        },
    )


def kernel_weights(sizes: np.ndarray, share: np.ndarray, n: int) -> np.ndarray:
    """Shapley-kernel regression weights of sampled rows: share / (|S| (n - |S|)), i.e. the kernel
    1 / (binom(n, |S|) |S| (n - |S|)) times the row's Horvitz-Thompson multiplicity."""
    return share / (sizes * (n - sizes))


def kernelshap_sample(n: int, budget: int, seed: int, paired: bool = True) -> CoalitionSample:
    """The coalitions and importance weights of lsi's `kernelshap` for the same budget and seed (shapiq's
    KernelSHAP sampler: kernel-weighted sizes, with replacement, border trick), so that a regression on
    them can be compared with it coalition for coalition. Shares are its sampling-adjustment weights
    over binom(n, |S|); with an odd number of sampled coalitions shapiq leaves the last one unpaired."""
    import shapiq.approximator

    sampler = shapiq.approximator.KernelSHAP(n=n, pairing_trick=paired, random_state=seed)._sampler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # shapiq warns near full enumeration
        sampler.sample(min(budget, 2**n))
    coalitions = sampler.coalitions_matrix.astype(bool)
    sizes = coalitions.sum(axis=1)
    inner = (sizes > 0) & (sizes < n)
    share = sampler.sampling_adjustment_weights[inner] / np.array([comb(n, int(k)) for k in sizes[inner]])
    return CoalitionSample(
        coalitions=np.concatenate([_ends(n), coalitions[inner]]),
        share=np.concatenate([np.zeros(2), share]),
        fold=np.concatenate([np.full(2, -1), np.where(sampler.is_coalition_sampled[inner], 0, -1)]),
        info={"pairing": paired, "sampler": "shapiq KernelSHAP (the coalitions of `kernelshap`)"},
    )

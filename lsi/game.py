"""Cooperative games over players (layers): the value of a coalition of KEPT players.

A coalition is a boolean row, True = kept, one column per player in player order. Evaluating a
coalition of the real layer game is a model run, so `Game.value` memoises: each distinct coalition
is computed once per game object, and `Game.evaluations` counts the distinct coalitions computed,
which is the budget every estimator is charged. Memo keys are the project's bit strings
("1" = kept) as ASCII bytes, so tables read from the score store need no translation.

Besides the base class: `TableGame` (values read from a table) and `DocumentGame` (values that are
means over documents, for bootstrap intervals). Synthetic games with known values are in
`lsi.synthetic_games`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from math import comb

import numpy as np

# Exact Shapley values enumerate all 2^n coalitions: 65,536 at this limit.
MAX_EXACT_PLAYERS = 16


class MissingCoalitionError(KeyError):
    """A table game was asked for a coalition it does not hold."""


def as_coalitions(coalitions: np.ndarray, n_players: int) -> np.ndarray:
    """Validate a (m, n) array of 0/1 or bool entries and return it as bool."""
    array = np.asarray(coalitions)
    if array.ndim != 2 or array.shape[1] != n_players:
        raise ValueError(f"coalitions must be a (m, {n_players}) array; got shape {array.shape}")
    if array.dtype != bool:
        if array.size and not np.isin(array, (0, 1)).all():
            raise ValueError("coalitions must hold booleans or 0/1 entries")
        array = array.astype(bool)
    return array


def coalition_keys(coalitions: np.ndarray) -> list[bytes]:
    """Bit strings ("1" = kept) of the rows of a bool (m, n) array, as ASCII bytes."""
    ascii_rows = np.ascontiguousarray(coalitions, dtype=np.uint8) + ord("0")
    return [row.tobytes() for row in ascii_rows]


def bit_strings(coalitions: np.ndarray) -> list[str]:
    """Bit strings ("1" = kept) of the rows of a bool (m, n) array."""
    return [key.decode() for key in coalition_keys(coalitions)]


def from_bit_strings(bits: Sequence[str | bytes]) -> np.ndarray:
    """Bool (m, n) array from bit strings ("1" = kept)."""
    raw = [b.encode() if isinstance(b, str) else b for b in bits]
    if not raw or len({len(b) for b in raw}) != 1 or any(set(b) - set(b"01") for b in raw):
        raise ValueError("bit strings must be non-empty, of equal length, and contain only '0'/'1'")
    return np.frombuffer(b"".join(raw), dtype=np.uint8).reshape(len(raw), -1) == ord("1")


def all_coalitions(n_players: int) -> np.ndarray:
    """All 2^n coalitions; row k keeps player i iff bit i of k is set (the `TableGame` array order)."""
    return ((np.arange(2**n_players)[:, None] >> np.arange(n_players)) & 1).astype(bool)


def shapley_from_table(values: np.ndarray) -> np.ndarray:
    """Exact Shapley values from the values of all 2^n coalitions in `all_coalitions` order.

    phi_i = sum over S without i of |S|! (n-|S|-1)! / n! * (v(S + i) - v(S)), vectorised per player.
    """
    values = np.asarray(values, dtype=float)
    n = int(np.log2(values.size))
    if values.ndim != 1 or values.size != 2**n:
        raise ValueError(f"need one value per coalition (a power of two); got shape {values.shape}")
    index = np.arange(2**n)
    sizes = np.bitwise_count(index)
    weight = np.array([1.0 / (n * comb(n - 1, s)) for s in range(n)])
    phi = np.empty(n)
    for i in range(n):
        without = index[(index >> i) & 1 == 0]
        phi[i] = weight[sizes[without]] @ (values[without | (1 << i)] - values[without])
    return phi


class Game(abc.ABC):
    """n players; value(coalitions) for a (m, n) bool array -> (m,) floats.

    Memoised: each distinct coalition is computed once per game object (subclasses implement
    `_compute` for a batch of NEW, distinct coalitions), and `evaluations` counts the distinct
    coalitions computed: the budget every estimator is charged.
    """

    def __init__(self, n_players: int, names: Sequence[str] | None = None, chance: float | None = None):
        """`chance`: the value meaning "collapsed to random guessing" (None for synthetic games)."""
        if n_players < 1:
            raise ValueError(f"a game needs at least one player; got {n_players}")
        names = tuple(str(i) for i in range(n_players)) if names is None else tuple(names)
        if len(names) != n_players or len(set(names)) != n_players:
            raise ValueError(f"need {n_players} distinct player names; got {len(names)}")
        self.n_players = n_players
        self.names = names
        self.chance = chance
        self._memo: dict[bytes, float] = {}

    @property
    def evaluations(self) -> int:
        """Distinct coalitions computed so far."""
        return len(self._memo)

    @property
    def evaluated(self) -> list[str]:
        """The distinct coalitions computed so far, as bit strings, in the order first asked for."""
        return [key.decode() for key in self._memo]

    def value(self, coalitions: np.ndarray) -> np.ndarray:
        """Values of the coalitions, computing each distinct coalition at most once ever."""
        coalitions = as_coalitions(coalitions, self.n_players)
        keys = coalition_keys(coalitions)
        new: dict[bytes, int] = {}
        for row, key in enumerate(keys):
            if key not in self._memo and key not in new:
                new[key] = row
        if new:
            computed = np.asarray(self._compute(coalitions[list(new.values())]), dtype=float)
            if computed.shape != (len(new),):
                raise ValueError(
                    f"{type(self).__name__}._compute returned {computed.shape} for {len(new)} coalitions"
                )
            self._memo.update(zip(new, computed.tolist(), strict=True))
        return np.array([self._memo[key] for key in keys], dtype=float)

    def doc_values(self, coalitions: np.ndarray) -> np.ndarray | None:
        """(m, n_docs) per-document values whose mean over documents is `value`; None if the game has none."""
        return None

    @abc.abstractmethod
    def _compute(self, coalitions: np.ndarray) -> np.ndarray:
        """Values of a batch of distinct coalitions never computed before."""

    def restricted(self, players: Sequence[int]) -> Game:
        """Sub-game over `players` (in the given order); every other player is always kept."""
        return RestrictedGame(self, players)


class RestrictedGame(Game):
    """A game over a subset of a parent's players, the others always kept.

    Its coalitions are evaluated through the parent, so they count on (and reuse) the parent's memo.
    """

    def __init__(self, parent: Game, players: Sequence[int]):
        index = np.asarray(players, dtype=int)
        if index.ndim != 1 or index.size == 0 or len(set(index.tolist())) != index.size:
            raise ValueError("restricted players must be a non-empty sequence of distinct indices")
        if index.min() < 0 or index.max() >= parent.n_players:
            raise ValueError(f"player indices must lie in 0..{parent.n_players - 1}")
        super().__init__(index.size, [parent.names[i] for i in index], parent.chance)
        self.parent = parent
        self.players = index

    def _expand(self, coalitions: np.ndarray) -> np.ndarray:
        full = np.ones((len(coalitions), self.parent.n_players), dtype=bool)
        full[:, self.players] = coalitions
        return full

    def _compute(self, coalitions: np.ndarray) -> np.ndarray:
        return self.parent.value(self._expand(coalitions))

    def doc_values(self, coalitions: np.ndarray) -> np.ndarray | None:
        coalitions = as_coalitions(coalitions, self.n_players)
        self.value(coalitions)
        return self.parent.doc_values(self._expand(coalitions))


class TableGame(Game):
    """A game read from a table: precomputed, loaded from a store, or bootstrap-resampled values.

    `values` is either a mapping from coalitions (frozensets of kept player indices, or bit strings
    as str or ASCII bytes) to values, or an array of all 2^n values in `all_coalitions` order.
    Asking for a coalition the table lacks raises `MissingCoalitionError`.
    """

    def __init__(
        self,
        values: Mapping[frozenset[int] | str | bytes, float] | np.ndarray,
        n_players: int | None = None,
        names: Sequence[str] | None = None,
        chance: float | None = None,
    ):
        if n_players is None and names is not None:
            n_players = len(names)
        if isinstance(values, Mapping):
            if n_players is None:
                n_players = _bit_length(next(iter(values), None))
            table = {_table_key(key, n_players): float(v) for key, v in values.items()}
        else:
            array = np.asarray(values, dtype=float).ravel()
            n_from_size = int(np.log2(max(array.size, 1)))
            if array.size != 2**n_from_size or n_players not in (None, n_from_size):
                raise ValueError(f"a full table needs 2^n values; got {array.size} for n_players={n_players}")
            n_players = n_from_size
            table = dict(zip(coalition_keys(all_coalitions(n_players)), array.tolist(), strict=True))
        super().__init__(n_players, names, chance)
        self.table = table

    def _compute(self, coalitions: np.ndarray) -> np.ndarray:
        keys = coalition_keys(coalitions)
        missing = [key.decode() for key in keys if key not in self.table]
        if missing:
            raise MissingCoalitionError(f"{len(missing)} coalition(s) not in the table, e.g. {missing[0]}")
        return np.array([self.table[key] for key in keys])


def _bit_length(key: object) -> int:
    if isinstance(key, str | bytes):
        return len(key)
    raise ValueError("pass n_players (or names) when the table is keyed by frozensets or empty")


def _table_key(key: frozenset[int] | str | bytes, n_players: int) -> bytes:
    if isinstance(key, str):
        key = key.encode()
    if isinstance(key, bytes):
        if len(key) != n_players or key.strip(b"01"):
            raise ValueError(f"table key {key!r} is not a bit string of length {n_players}")
        return key
    if any(not 0 <= i < n_players for i in key):
        raise ValueError(f"table key {set(key)} has players outside 0..{n_players - 1}")
    row = np.zeros((1, n_players), dtype=bool)
    row[0, list(key)] = True
    return coalition_keys(row)[0]


class DocumentGame(Game):
    """A game whose value is a mean over documents (e.g. accuracy): keeps per-document values.

    Subclasses implement `_compute_documents`; `doc_values` then serves the bootstrap over documents
    from the memo, without computing anything twice.
    """

    def __init__(self, n_players: int, names: Sequence[str] | None = None, chance: float | None = None):
        super().__init__(n_players, names, chance)
        self._documents: dict[bytes, np.ndarray] = {}

    @abc.abstractmethod
    def _compute_documents(self, coalitions: np.ndarray) -> np.ndarray:
        """(m, n_docs) per-document values of a batch of new coalitions."""

    def _compute(self, coalitions: np.ndarray) -> np.ndarray:
        documents = np.asarray(self._compute_documents(coalitions), dtype=float)
        if documents.ndim != 2 or len(documents) != len(coalitions):
            raise ValueError(f"per-document values must be (m, n_docs); got shape {documents.shape}")
        self._documents.update(zip(coalition_keys(coalitions), documents, strict=True))
        return documents.mean(axis=1)

    def doc_values(self, coalitions: np.ndarray) -> np.ndarray:
        coalitions = as_coalitions(coalitions, self.n_players)
        self.value(coalitions)
        return np.stack([self._documents[key] for key in coalition_keys(coalitions)])

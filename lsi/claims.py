"""Claims: which writer scores which coalition, so that two runs on one store never score one twice.

A writer claims the coalitions it is about to score in `claims/<host>-<pid>` inside the store, under
the store's lock, and drops the file when done. Another writer skips what is claimed, and waits for it
to be stored. A claim lapses when its writer is gone: on this host, when its process no longer runs;
from another host (a shared file system), when its file has not been touched for `LAPSE_S` seconds
(the owner touches it each time it stores a unit, so a unit longer than that can be scored twice).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable

from lsi.store import ScoreStore

LAPSE_S = 30 * 60


def _mine() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _alive(name: str) -> bool:
    host, _, pid = name.rpartition("-")
    if host != socket.gethostname():
        return True  # decided by the file's age
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def claimed_by_others(store: ScoreStore) -> set[str]:
    """Coalitions that live writers other than this process have claimed; lapsed claims are removed.
    Call under `store.writing()`."""
    folder = store.path / "claims"
    taken: set[str] = set()
    for path in folder.glob("*") if folder.is_dir() else ():
        if path.name == _mine():
            continue
        lapsed = time.time() - path.stat().st_mtime > LAPSE_S
        if not _alive(path.name) or lapsed:
            path.unlink(missing_ok=True)
            continue
        taken |= set(path.read_text().split())
    return taken


def claim(store: ScoreStore, coalitions: Iterable[str]) -> list[str]:
    """Of `coalitions`, those this process is now to score: not stored, not claimed by a live writer."""
    with store.writing():
        stored, taken = store.coalitions(), claimed_by_others(store)
        mine = [c for c in dict.fromkeys(coalitions) if c not in stored and c not in taken]
        if mine:
            (store.path / "claims").mkdir(exist_ok=True)
            with open(store.path / "claims" / _mine(), "a") as handle:
                handle.write("".join(f"{c}\n" for c in mine))
    return mine


def touch(store: ScoreStore) -> None:
    """Keep this process's claims from lapsing for writers on other hosts."""
    path = store.path / "claims" / _mine()
    if path.exists():
        path.touch()


def release(store: ScoreStore) -> None:
    """Drop this process's claims (what it scored is stored; the rest is free again)."""
    (store.path / "claims" / _mine()).unlink(missing_ok=True)

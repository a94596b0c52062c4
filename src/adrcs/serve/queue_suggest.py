"""The review queue ranked by label value (``GET /v1/inspections?order=suggest``): which pending inspection's
review would teach the next retraining (`adrcs adapt`) the most, with the strategies of `inference.suggest`.

The store keeps each inspection's class probabilities but not the network's features, so the ranking works on
what is stored, with no forward pass:

* embedding: BADGE's gradient embedding restricted to the last layer's bias, ``a = p - y_hat`` (the loss gradient
  at the model's own answer with respect to the logits; `suggest.gradient_factors`). Single-label rows: ``y_hat``
  = one-hot of the top class; multi-label rows (``predicted`` a JSON list) and detector rows (per-class top box
  scores, read as independent labels): ``y_hat = p >= 0.5``. Rows of different model versions share one column
  per class name (a class a row has no probability for counts as 0).
* rank: greedy k-center (`suggest.coreset`) on these embeddings, started from the embedding of a sure answer
  (the origin): rank 1 is the longest gradient (the least sure answer), each next one the row farthest from the
  origin and from every row ranked above it, i.e. uncertain *and* unlike what is already ahead in the queue.
  Deterministic (ties: newest first), and each page is a prefix-consistent slice of one ranking.
  ``suggest_score`` is that distance at pick time.
* bounded: only the newest `SUGGEST_POOL` pending rows matching the filters are ranked (``ranked`` in the
  response; ``total`` still counts the whole queue), and only the first ``offset + limit`` picks are computed:
  O(pool x picks x classes) arithmetic, well under a second for 2,000 rows.

Unknown patterns are not boosted here (their probabilities may look sure): ``order=queue`` keeps them first.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adrcs.inference.suggest import coreset, gradient_factors

SUGGEST_POOL = 2000  # newest pending inspections ranked per request
ORDERS = ("queue", "suggest", "newest")  # GET /v1/inspections?order=


def gradient_embeddings(probabilities: Sequence[Mapping[str, float]], multilabel: Sequence[bool]) -> np.ndarray:
    """(N, K) bias-gradient embeddings ``p - y_hat`` of stored probability dicts over the union of their class
    names (sorted); non-finite probabilities count as 0, a row without any gives zeros."""
    names = sorted({str(c) for p in probabilities for c in p})
    col = {c: j for j, c in enumerate(names)}
    p = np.zeros((len(probabilities), max(1, len(names))))
    for i, row in enumerate(probabilities):
        for c, v in row.items():
            p[i, col[str(c)]] = float(v) if v is not None else 0.0
    p = np.nan_to_num(p, nan=0.0, posinf=1.0, neginf=0.0)
    ml = np.asarray(multilabel, dtype=bool)
    a = np.zeros_like(p)
    if (~ml).any():
        a[~ml] = gradient_factors(p[~ml], multilabel=False)
    if ml.any():
        a[ml] = gradient_factors(p[ml], multilabel=True)
    a[p.sum(axis=1) <= 0] = 0.0  # no probabilities stored (nothing to learn from): not a sure-wrong top class
    return a


def rank(embeddings: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` picks of greedy k-center from the origin: ``(row index, distance at pick time)``."""
    if len(embeddings) == 0 or n < 1:
        return np.zeros(0, np.int64), np.zeros(0)
    origin = np.zeros((1, embeddings.shape[1]), dtype=np.float32)
    return coreset(embeddings.astype(np.float32), n, labelled_features=origin)


def is_multilabel(row: Any) -> bool:
    """A multi-label answer (``predicted`` a JSON list) or a detector's (boxes: per-class top scores)."""
    return str(row.predicted).startswith("[") or (row.kind == "image" and row.boxes is not None)


def suggest_page(store: Any, filters: dict[str, Any], limit: int,
                 offset: int) -> tuple[list[tuple[Any, int, float]], int]:
    """One page of the ranked queue: ``([(inspection, rank (1-based), score)], number of rows ranked)``."""
    pool = store.queue_candidates(**filters, limit=SUGGEST_POOL)
    if offset >= len(pool):
        return [], len(pool)
    a = gradient_embeddings([r.probabilities or {} for r in pool], [is_multilabel(r) for r in pool])
    idx, score = rank(a, min(offset + limit, len(pool)))
    idx, score = idx[offset:], score[offset:]
    recs = {r.id: r for r in store.inspections_by_id([pool[i].id for i in idx])}
    out = [(recs[pool[i].id], offset + k + 1, float(s)) for k, (i, s) in enumerate(zip(idx, score))
           if pool[i].id in recs]  # a row deleted in between is left out
    return out, len(pool)

"""Token classification (NER-style BIO tags): entity spans and entity-level precision/recall/F1.

Tags are "O", "B-TYPE" or "I-TYPE" (IOB2). Spans are read the way seqeval's default (conlleval)
mode reads them: a span starts at B-X, or at I-X after O or after a tag of another type; it ends
before the next tag that is not I-X. A predicted entity counts only when its type and both ends
equal a gold entity's (micro-averaged over all entities of all rows).

Written by hand (about 40 lines) because seqeval, the library that computes this, has had no
release since 2020 and `evaluate` fetches its metric scripts from the Hub at run time. The bundle's
predict.py carries its own copy of `spans`, since it ships without distillery.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

TAG = re.compile(r"^(O|[BI]-.+)$")


def bad_tags(names: Sequence[str]) -> list[str]:
    """The label names that are not BIO tags ("O", "B-TYPE", "I-TYPE")."""
    return [n for n in names if not TAG.match(n)]


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) of each entity in a tag sequence, end exclusive."""
    found, current = [], None  # current: [type, start]
    for i, tag in enumerate(tags):
        prefix, kind = (tag[0], tag[2:]) if tag != "O" else ("O", "")
        if current and (prefix != "I" or kind != current[0]):
            found.append((current[0], current[1], i))
            current = None
        if prefix == "B" or (prefix == "I" and current is None):
            current = [kind, i]
    if current:
        found.append((current[0], current[1], len(tags)))
    return found


def entity_scores(
    predicted: Sequence[Sequence[int]], gold: Sequence[Sequence[int]], names: Sequence[str]
) -> dict[str, float]:
    """Entity precision, recall and F1 (micro) and per-word tag accuracy of rows of tag ids."""
    tp = n_pred = n_gold = words = right = 0
    for pred_row, gold_row in zip(predicted, gold, strict=True):
        pred_spans = set(spans([names[i] for i in pred_row]))
        gold_spans = set(spans([names[i] for i in gold_row]))
        tp += len(pred_spans & gold_spans)
        n_pred, n_gold = n_pred + len(pred_spans), n_gold + len(gold_spans)
        words += len(gold_row)
        right += sum(int(p == g) for p, g in zip(pred_row, gold_row, strict=True))
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "entity_f1": f1,
        "entity_precision": precision,
        "entity_recall": recall,
        "tag_accuracy": right / words if words else 0.0,
    }

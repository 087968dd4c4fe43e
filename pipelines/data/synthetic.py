"""Generated tasks for the offline demo and the tests (`data.source: synthetic:NAME`).

Each generator is deterministic in its seed and returns plain rows `{"text": ..., "label": int}`
(pairs: `text_a`, `text_b`). The tasks are learnable by a 2-layer BERT but not by a bag of words
alone: negation flips the sentiment, so word order matters.
"""

from __future__ import annotations

import random
from collections.abc import Callable

POSITIVE = [
    "good",
    "great",
    "fine",
    "lovely",
    "superb",
    "charming",
    "brilliant",
    "warm",
    "funny",
    "moving",
]
NEGATIVE = ["bad", "awful", "dull", "boring", "weak", "clumsy", "tedious", "cold", "silly", "flat"]
SUBJECTS = [
    "the film",
    "this movie",
    "the plot",
    "the cast",
    "the script",
    "the ending",
    "the score",
    "the story",
    "the acting",
    "the director",
]
VERBS = ["is", "was", "seems", "felt", "looks"]
ADVERBS = ["", "really ", "very ", "quite ", "truly "]
FILLERS = ["", " overall", " to me", " in the end", " , honestly", " for a sequel"]
TOPICS = ["music", "sports", "cooking", "travel", "science", "history", "movies", "gardening"]


def _sentiment_row(rng: random.Random) -> dict:
    positive = rng.random() < 0.5
    negated = rng.random() < 0.35
    word = rng.choice(POSITIVE if positive else NEGATIVE)
    neg = " not" if negated else ""
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)}{neg} {rng.choice(ADVERBS)}{word}{rng.choice(FILLERS)}"
    label = int(positive != negated)
    return {"text": text, "label": label}


def _pairs_row(rng: random.Random) -> dict:
    same = rng.random() < 0.5
    topic_a = rng.choice(TOPICS)
    topic_b = topic_a if same else rng.choice([t for t in TOPICS if t != topic_a])
    a = f"i read a long article about {topic_a} {rng.choice(FILLERS)}".strip()
    b = f"{rng.choice(['they', 'we', 'she'])} talked about {topic_b} {rng.choice(ADVERBS)}".strip()
    return {"text_a": a, "text_b": b, "label": int(same)}


GENERATORS: dict[str, Callable[[random.Random], dict]] = {
    "sentiment": _sentiment_row,
    "pairs": _pairs_row,
}


def generate(name: str, rows: int, seed: int) -> list[dict]:
    """`rows` rows of task `name`; unknown names raise ValueError listing the known ones."""
    if name not in GENERATORS:
        raise ValueError(f"unknown synthetic task {name!r}; known: {sorted(GENERATORS)}")
    rng = random.Random(seed)
    return [GENERATORS[name](rng) for _ in range(rows)]

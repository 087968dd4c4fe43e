"""Generated tasks for the offline demo and the tests (`data.source: synthetic:NAME`).

Each generator is deterministic in its seed and returns plain rows `{"text": ..., "label": int}`
(pairs: `text_a`, `text_b`; `rating`: a float label, `tags`: a list of label names; `entities`:
`tokens` and `tags`, a word list and a BIO tag per word). The tasks are learnable by a 2-layer BERT
but not by a bag of words alone: negation flips the sentiment, so word order matters.

`sentiment_hard` (the demo's task) is made so that a teacher, a smaller student and an int8 copy
score differently, which is the trade-off the demo exists to show: most rows hold two clauses of
opposite sentiment joined by "but" / "although", and only one of them decides the label (the one
after "but", the one not after "although"), each clause may be negated, and a fixed fraction of
labels is flipped (`LABEL_NOISE`), so no model reaches 100%.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from pipelines.data.entity_sentences import entities_row

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


LABEL_NOISE = 0.06  # sentiment_hard: fraction of rows whose label is flipped
CONTRAST = 0.65  # sentiment_hard: fraction of rows with two clauses


def _clause(rng: random.Random, positive: bool) -> tuple[str, bool]:
    """A clause and the sentiment it expresses (negation flips the word's polarity)."""
    negated = rng.random() < 0.35
    word = rng.choice(POSITIVE if positive else NEGATIVE)
    neg = " not" if negated else ""
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)}{neg} {rng.choice(ADVERBS)}{word}"
    return text, positive != negated


def _sentiment_hard_row(rng: random.Random) -> dict:
    if rng.random() < CONTRAST:
        first, first_label = _clause(rng, rng.random() < 0.5)
        second, second_label = _clause(rng, rng.random() < 0.5)
        if rng.random() < 0.5:
            text, label = f"{first} , but {second}{rng.choice(FILLERS)}", second_label
        else:
            text, label = f"although {first} , {second}{rng.choice(FILLERS)}", second_label
            if rng.random() < 0.5:  # the deciding clause first: "X , although Y"
                text, label = f"{second} , although {first}{rng.choice(FILLERS)}", second_label
    else:
        text, label = _clause(rng, rng.random() < 0.5)
        text += rng.choice(FILLERS)
    if rng.random() < LABEL_NOISE:
        label = not label
    return {"text": text, "label": int(label)}


def _pairs_row(rng: random.Random) -> dict:
    same = rng.random() < 0.5
    topic_a = rng.choice(TOPICS)
    topic_b = topic_a if same else rng.choice([t for t in TOPICS if t != topic_a])
    a = f"i read a long article about {topic_a} {rng.choice(FILLERS)}".strip()
    b = f"{rng.choice(['they', 'we', 'she'])} talked about {topic_b} {rng.choice(ADVERBS)}".strip()
    return {"text_a": a, "text_b": b, "label": int(same)}


VERDICTS = ["so it is {}", "in short , {}", "my verdict : {}", "all in all {}"]


def _verdict_row(rng: random.Random) -> dict:
    """A sentence pair: is the verdict in `text_b` at least as positive as the review in `text_a`?

    Yes and no are equally likely (no = a positive review, a negative verdict); the label reads
    both sentences, negation in the review included, and depends on their order. Either sentence
    alone gets 5 rows in 6 right, the pair all of them. (Had the label been agreement, each
    sentence alone would be at chance, but that XOR is not learnt by a 2-layer model from a few
    hundred rows.)"""
    if rng.random() < 0.5:
        review_positive, verdict_positive = True, False
    else:
        review_positive, verdict_positive = rng.choice(
            [(True, True), (False, True), (False, False)]
        )
    negated = rng.random() < 0.35
    word = rng.choice(POSITIVE if review_positive != negated else NEGATIVE)
    neg = " not" if negated else ""
    review = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)}{neg} {rng.choice(ADVERBS)}{word}"
    verdict = rng.choice(VERDICTS).format(rng.choice(POSITIVE if verdict_positive else NEGATIVE))
    return {
        "text_a": review,
        "text_b": verdict,
        "label": int(verdict_positive or not review_positive),
    }


def _topic_row(rng: random.Random) -> dict:
    """Which of the 8 TOPICS a sentiment sentence is about (the transfer demo's 8-label source)."""
    topic = rng.randrange(len(TOPICS))
    row = _sentiment_row(rng)
    return {"text": f"the {TOPICS[topic]} part : {row['text']}", "label": topic}


ASPECTS = ["plot", "cast", "music", "ending"]  # `tags`' labels, in order


def _rating_row(rng: random.Random) -> dict:
    """Regression: a review of two clauses rated 1..5: 1 + 2 per positive clause, plus noise of
    up to ±0.4, so the target is a real number (no negation: a tiny model learns it)."""
    clauses, positives = [], 0
    for _ in range(2):
        positive = rng.random() < 0.5
        positives += positive
        word = rng.choice(POSITIVE if positive else NEGATIVE)
        clauses.append(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(ADVERBS)}{word}")
    score = 1.0 + 2.0 * positives + rng.uniform(-0.4, 0.4)
    return {"text": " and ".join(clauses) + rng.choice(FILLERS), "label": round(score, 3)}


def _tags_row(rng: random.Random) -> dict:
    """Multi-label: which of the ASPECTS a review talks about (none to all of them; each with
    probability 0.5), whatever it says of them."""
    mentioned = [a for a in ASPECTS if rng.random() < 0.5]
    clauses = []
    for aspect in rng.sample(mentioned, len(mentioned)):
        word = rng.choice(POSITIVE + NEGATIVE)
        clauses.append(f"the {aspect} {rng.choice(VERBS)} {rng.choice(ADVERBS)}{word}")
    text = " , ".join(clauses) if clauses else f"i saw it{rng.choice(FILLERS)}"
    return {"text": text, "label": mentioned}


GENERATORS: dict[str, Callable[[random.Random], dict]] = {
    "sentiment": _sentiment_row,
    "topic": _topic_row,
    "sentiment_hard": _sentiment_hard_row,
    "pairs": _pairs_row,
    "verdict": _verdict_row,
    "rating": _rating_row,
    "tags": _tags_row,
    "entities": entities_row,  # token classification (pipelines/data/entity_sentences.py)
}


def generate(name: str, rows: int, seed: int) -> list[dict]:
    """`rows` rows of task `name`; unknown names raise ValueError listing the known ones."""
    if name not in GENERATORS:
        raise ValueError(f"unknown synthetic task {name!r}; known: {sorted(GENERATORS)}")
    rng = random.Random(seed)
    return [GENERATORS[name](rng) for _ in range(rows)]

"""`synthetic:entities`: generated sentences tagged for NER (BIO tags over PER, LOC, ORG).

Rows are `{"tokens": [...words], "tags": [...tags]}`. What makes it more than a word list: some
names are ambiguous (jordan, paris, georgia and austin are people or places, amazon a company or
a place, apple a company or a fruit), so their tag comes from the context, and one name in four is
made of random syllables, which a vocabulary built from the train split mostly has not seen.
"""

from __future__ import annotations

import random

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]  # the task's labels, in order

NAMES = {
    "PER": [
        "alice",
        "bruno",
        "chen",
        "dana",
        "emil",
        "farah",
        "jordan",
        "paris",
        "georgia",
        "austin",
    ],
    "LOC": [
        "berlin",
        "lima",
        "oslo",
        "jordan",
        "paris",
        "georgia",
        "austin",
        "new york",
        "san diego",
        "the amazon",
    ],
    "ORG": ["acme", "globex", "initech", "amazon", "apple", "general motors", "blue river labs"],
}
SURNAMES = ["smith", "okafor", "lindqvist", "tanaka", "moreau"]
SYLLABLES = ["ka", "lo", "mi", "ra", "ten", "vo", "zu", "bel", "dor", "fin", "sa", "qui"]
PATTERNS = [  # {PER} / {LOC} / {ORG} are entities; every other word is O
    "{PER} said that {ORG} will open an office in {LOC}",
    "{PER} flew to {LOC} on monday",
    "shares of {ORG} rose after {PER} spoke",
    "{PER} works for {ORG}",
    "the weather in {LOC} was mild",
    "{PER} ate an apple in {LOC}",
    "according to {PER} , {ORG} hired {PER}",
    "{ORG} signed a deal with {ORG} in {LOC}",
    "we met {PER} and {PER} near {LOC}",
    "a river runs through {LOC}",
    "{ORG} sued {ORG} over a patent",
    "my friend {PER} moved from {LOC} to {LOC}",
]
FILLERS = [[], [], ["yesterday"], ["again"], ["it", "seems"]]


def _name(rng: random.Random, kind: str) -> list[str]:
    if rng.random() < 0.25:  # an unseen-looking name: context decides
        words = ["".join(rng.choice(SYLLABLES) for _ in range(2))]
    else:
        words = rng.choice(NAMES[kind]).split()
    if kind == "PER" and rng.random() < 0.4:
        words.append(rng.choice(SURNAMES))
    return words


def entities_row(rng: random.Random) -> dict:
    words, tags = [], []
    for part in rng.choice(PATTERNS).split():
        if part.startswith("{"):
            kind = part[1:-1]
            name = _name(rng, kind)
            words += name
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
        else:
            words.append(part)
            tags.append("O")
    filler = rng.choice(FILLERS)
    return {"tokens": words + filler, "tags": tags + ["O"] * len(filler)}

"""Augmented training set: new unlabeled rows made from the training rows, for the teacher to
label (the distillation literature's "transfer set"; here `transfer` is only the recipe's
cross-task section).

    rows = augment_rows(texts, AugmentSpec(factor=3, methods=("mask", "ngram", "shuffle")), seed=0)
    rows = augment_rows(texts, spec, seed=0, mlm=MLMReplacer.load("bert-base-uncased"))

Tang et al. 2019 ("Distilling Task-Specific Knowledge from BERT into Simple Neural Networks")
and TinyBERT (Jiao et al. 2020) grow the training set this way: the student learns the teacher's
soft outputs on sentences the task's data does not hold, which is where distillation beats
training on labels. Each new row applies one method, picked at random, to a training row:

- `mask`: each word replaced by the tokenizer's mask token with probability `p_mask`;
- `ngram`: an n-gram of 1..`max_ngram` words sampled from the row (Tang et al.);
- `dropout`: each word dropped with probability `p_drop` (one word is always kept);
- `shuffle`: words shuffled within windows of `window` words;
- `mlm`: each word replaced, with probability `p_mlm`, by one of the `top_k` words a masked
  language model predicts in its place (TinyBERT's replacement; needs `mlm=MLMReplacer`);
- `replace`: each word replaced, with probability `p_replace`, by a word drawn from the training
  rows' own words (as often as they occur there): Tang et al.'s word replacement without the
  part-of-speech tagger, which would need a tagging model this project does not ship;
- `tang`: Tang et al.'s scheme in one row: each word masked (`p_mask`) or else replaced
  (`p_replace`), then, with probability `p_ngram`, an n-gram of the result kept.

Sentence pairs are augmented side by side, each side on its own. Rows are plain strings (or
tuples for pairs); labels are the teacher's, so none are made here. Everything is decided by
`seed` and the row's index, so a chunk of rows can be generated again, or resumed, alone.

Written here because no maintained library does it for distillation: TextAttack and nlpaug carry
heavy resources (WordNet, embeddings) and augment for robustness, not distillation.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from modelkit.errors import InputError

Row = str | tuple[str, ...]


@dataclass(frozen=True)
class AugmentSpec:
    factor: float = 2.0  # new rows per training row (fractions: that share of rows gets one)
    methods: tuple[str, ...] = ("mask", "ngram", "dropout", "shuffle")
    p_mask: float = 0.1
    max_ngram: int = 5
    p_drop: float = 0.1
    window: int = 3
    p_mlm: float = 0.3
    p_replace: float = 0.1
    p_ngram: float = 0.25
    top_k: int = 15
    max_rows: int | None = None  # a cap on the rows made
    mask_token: str = "[MASK]"
    extra: dict = field(default_factory=dict)  # "words": what `replace` draws from (augment_rows)

    def __post_init__(self) -> None:
        for name in self.methods:
            if name not in METHODS:
                raise InputError(f"augment method {name!r}: allowed values {sorted(METHODS)}")
        if not self.methods:
            raise InputError("augment: give at least one method")
        if self.factor <= 0:
            raise InputError(f"augment factor {self.factor}: must be > 0")


# Each method changes a row at least once (a copy of the row would only repeat a training row);
# a one-word row is masked whatever the method (augment_rows).


def _mask(words: list[str], rng: random.Random, spec: AugmentSpec) -> list[str]:
    out = [spec.mask_token if rng.random() < spec.p_mask else w for w in words]
    if spec.mask_token not in out:
        out[rng.randrange(len(out))] = spec.mask_token
    return out


def _ngram(words: list[str], rng: random.Random, spec: AugmentSpec) -> list[str]:
    n = rng.randint(1, max(1, min(spec.max_ngram, len(words) - 1)))
    start = rng.randint(0, len(words) - n)
    return words[start : start + n]


def _dropout(words: list[str], rng: random.Random, spec: AugmentSpec) -> list[str]:
    keep = [rng.random() >= spec.p_drop for _ in words]
    if all(keep) and len(words) > 1:
        keep[rng.randrange(len(words))] = False
    kept = [w for w, k in zip(words, keep, strict=True) if k]
    return kept or [rng.choice(words)]


def _shuffle(words: list[str], rng: random.Random, spec: AugmentSpec) -> list[str]:
    out = []
    for start in range(0, len(words), spec.window):
        chunk = words[start : start + spec.window]
        rng.shuffle(chunk)
        out += chunk
    if out == words and len(set(words)) > 1:  # swap two different neighbours in one window
        pairs = [
            i for i in range(len(words) - 1) if (i + 1) % spec.window and words[i] != words[i + 1]
        ]
        if pairs:
            i = rng.choice(pairs)
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


def _replace(words: list[str], rng: random.Random, spec: AugmentSpec) -> list[str]:
    pool = spec.extra.get("words") or words
    out = [rng.choice(pool) if rng.random() < spec.p_replace else w for w in words]
    if out == words:  # replace one word by a different one (a few draws: the pool may repeat it)
        i = rng.randrange(len(words))
        for _ in range(8):
            out[i] = rng.choice(pool)
            if out[i] != words[i]:
                break
    return out


def _tang(words: list[str], rng: random.Random, spec: AugmentSpec) -> list[str]:
    pool = spec.extra.get("words") or words
    out = []
    for w in words:
        u = rng.random()
        if u < spec.p_mask:
            out.append(spec.mask_token)
        elif u < spec.p_mask + spec.p_replace:
            out.append(rng.choice(pool))
        else:
            out.append(w)
    if rng.random() < spec.p_ngram and len(out) > 1:
        out = _ngram(out, rng, spec)
    if out == words:
        out = _mask(words, rng, spec)
    return out


METHODS: dict[str, Callable[[list[str], random.Random, AugmentSpec], list[str]]] = {
    "mask": _mask,
    "ngram": _ngram,
    "dropout": _dropout,
    "shuffle": _shuffle,
    "mlm": lambda words, rng, spec: words,  # marks words for MLMReplacer; see augment_rows
    "replace": _replace,
    "tang": _tang,
}


def planned(n_rows: int, spec: AugmentSpec, seed: int) -> list[int]:
    """The source row of every new row, in order: `factor` per row, capped at `max_rows`."""
    whole, part = int(spec.factor), spec.factor - int(spec.factor)
    rng = random.Random(seed)
    sources = [i for i in range(n_rows) for _ in range(whole)]
    if part:
        sources += sorted(rng.sample(range(n_rows), round(part * n_rows)))
        sources.sort()
    return sources[: spec.max_rows] if spec.max_rows else sources


def augment_rows(
    rows: Sequence[Row],
    spec: AugmentSpec,
    seed: int,
    *,
    indices: Sequence[int] | None = None,
    mlm: MLMReplacer | None = None,
) -> list[Row]:
    """New rows: for each index `k` of `indices` (default: all of `planned(len(rows))`), method
    and words drawn from `Random(seed, k)` applied to `rows[source(k)]`."""
    sources = planned(len(rows), spec, seed)
    indices = range(len(sources)) if indices is None else indices
    if "mlm" in spec.methods and mlm is None:
        raise InputError("augment method 'mlm' needs a masked language model (augment.mlm_model)")
    if {"replace", "tang"} & set(spec.methods) and "words" not in spec.extra:
        spec = replace(spec, extra={**spec.extra, "words": training_words(rows)})
    out: list[Row] = []
    marked: list[tuple[int, int, int, list[int]]] = []  # (row in out, k, side, positions): mlm
    for k in indices:
        rng = random.Random(f"{seed}:{k}")
        row = rows[sources[k]]
        sides = (row,) if isinstance(row, str) else tuple(row)
        method = rng.choice(spec.methods)
        new_sides = []
        for side_index, text in enumerate(sides):
            words = text.split() or [text]
            if method == "mlm":
                chosen = [i for i in range(len(words)) if rng.random() < spec.p_mlm]
                marked.append((len(out), k, side_index, chosen))
                new_sides.append(words)
            else:  # a one-word side can only be masked: the other methods would copy it
                use = method if len(words) > 1 else "mask"
                new_sides.append(METHODS[use](words, rng, spec))
        out.append(tuple(" ".join(w) if isinstance(w, list) else w for w in new_sides))
    if marked:
        texts = [list(out[r]) for r in range(len(out))]
        picks = mlm.replace(
            [(f"{seed}:{k}:{side}", texts[r][side].split(), pos) for r, k, side, pos in marked],
            top_k=spec.top_k,
        )
        for (r, _, side, _), words in zip(marked, picks, strict=True):
            texts[r][side] = " ".join(words)
        out = [tuple(t) for t in texts]
    return [row[0] if len(row) == 1 else row for row in out]


def training_words(rows: Sequence[Row]) -> tuple[str, ...]:
    """Every word of the rows, in order, repeats kept: `replace` draws from it, so a word comes
    up as often as the training text uses it."""
    return tuple(
        w
        for row in rows
        for side in ((row,) if isinstance(row, str) else row)
        for w in side.split()
    )


class MLMReplacer:
    """Words replaced by a masked LM's guesses (TinyBERT): each chosen word is masked in its
    sentence, and one of the model's `top_k` predictions for that position (whole-word
    vocabulary entries, not the word itself) takes its place. Batched over sentences."""

    def __init__(self, model, tokenizer, batch_size: int = 32, device: str = "cpu") -> None:
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.device = device

    @classmethod
    def load(cls, source: str, *, trust_remote_code: bool = False, **kwargs) -> MLMReplacer:
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        model = AutoModelForMaskedLM.from_pretrained(
            source, use_safetensors=True, trust_remote_code=trust_remote_code
        )
        return cls(model, AutoTokenizer.from_pretrained(source), **kwargs)

    def replace(
        self, items: list[tuple[str, list[str], list[int]]], top_k: int = 15
    ) -> list[list[str]]:
        """For each (seed, words, positions): the words with those positions replaced, the
        guesses drawn from `Random(seed)` (the same whatever else is in the batch)."""
        import torch

        tok = self.tokenizer
        out = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            masked = [
                [tok.mask_token if i in set(pos) else w for i, w in enumerate(words)]
                for _, words, pos in chunk
            ]
            enc = tok(
                masked,
                is_split_into_words=True,
                truncation=True,
                max_length=128,
                padding=True,
                return_tensors="pt",
            )
            with torch.inference_mode():
                logits = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits
            top = logits.topk(top_k + 1, dim=-1).indices.cpu()
            for b, (item_seed, words, positions) in enumerate(chunk):
                rng = random.Random(f"mlm:{item_seed}")
                new = list(words)
                word_ids = enc.word_ids(b)
                for i in positions:
                    token = next((t for t, w in enumerate(word_ids) if w == i), None)
                    if token is None:  # truncated away: keep the word
                        continue
                    guesses = [
                        g
                        for g in tok.convert_ids_to_tokens(top[b, token].tolist())
                        if g.isalpha() and g.lower() != words[i].lower()
                    ][:top_k]
                    if guesses:
                        new[i] = rng.choice(guesses)
                out.append(new)
        return out

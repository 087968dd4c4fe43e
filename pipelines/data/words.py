"""Token classification inputs: word lists → word pieces, each word's tag on its first piece.

As transformers' token-classification examples do it: -100 (ignored by the loss, the KD mask's
label side and the metrics) on special tokens and on every piece of a word after its first;
truncation to `data.max_length` drops the words past it, whose tags are then not scored.
"""

from __future__ import annotations

from pipelines.core.errors import DataError


def align_tags(word_ids: list[int | None], tags: list[int]) -> list[int]:
    """Per word piece: the tag of the word it starts, else -100."""
    out, previous = [], None
    for word in word_ids:
        out.append(-100 if word is None or word == previous else tags[word])
        previous = word
    return out


def tokenize_words(dataset, tokenizer, column: str, max_length: int):
    """Tokenize the word lists in `column` (no padding) and align `labels` to the pieces."""
    if not getattr(tokenizer, "is_fast", False):
        raise DataError(
            f"task.type token_classification needs a fast tokenizer (word ids per piece); "
            f"{type(tokenizer).__name__} is not one. Save the model with its tokenizer.json."
        )

    def encode(batch, indices):
        try:
            encoded = tokenizer(
                batch[column], is_split_into_words=True, truncation=True, max_length=max_length
            )
        except ValueError as exc:  # byte-level BPE (RoBERTa) without add_prefix_space
            raise DataError(
                f"token_classification: the tokenizer cannot read word lists ({exc}). For a "
                "byte-level BPE tokenizer, save it with add_prefix_space=True and point "
                "teacher.tokenizer at that folder."
            ) from None
        labels = []
        for i, (words, tags) in enumerate(zip(batch[column], batch["labels"], strict=True)):
            word_ids = encoded.word_ids(i)
            _check_pieces(words, word_ids, len(encoded["input_ids"][i]), max_length, indices[i])
            labels.append(align_tags(word_ids, tags))
        encoded["labels"] = labels
        return encoded

    return dataset.map(
        encode, batched=True, with_indices=True, remove_columns=[column], desc="tokenize"
    )


def _check_pieces(words: list[str], word_ids: list, length: int, max_length: int, row: int):
    """Every word (up to truncation) gives at least one piece: an empty word or one the
    tokenizer's normalizer removes whole (a zero-width space) would carry a tag no piece holds."""
    seen = {w for w in word_ids if w is not None}
    last = max(seen) if length >= max_length and seen else len(words) - 1  # truncated: up to there
    missing = [w for w in range(last + 1) if w not in seen]
    if missing:
        raise DataError(
            f"row {row + 1} (of the split as loaded): word {missing[0] + 1} "
            f"({words[missing[0]]!r}) gives no word pieces "
            "(empty, or only characters the tokenizer drops), so its tag cannot be learnt or "
            "scored. Drop that word and its tag from the row."
        )


def collator(tokenizer, kind: str):
    """The Trainer's batch padding: token labels pad with -100, row labels are stacked."""
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    if kind == "token_classification":
        return DataCollatorForTokenClassification(tokenizer)
    return DataCollatorWithPadding(tokenizer)


def joined_words(values: list) -> list[str]:
    """Texts for a vocabulary built from the data: word lists joined by spaces."""
    return [" ".join(v) if isinstance(v, list) else v for v in values]

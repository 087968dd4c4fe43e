"""Tiny classifiers of every encoder family in `modelkit.families`, each with a tokenizer of its
own kind (WordPiece, byte-level BPE, SentencePiece-style Unigram) built from the generated words,
saved as a local Hugging Face folder the pipeline loads like a hub checkpoint.

The tokenizers are built, not trained: a fixed whole-word vocabulary (plus single characters for
anything else) gives the same ids on every machine and short sequences, so a 2-layer model learns
the generated task in a few epochs.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.data.synthetic import generate

SHAPE = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
LAYERS = 2
FAMILY_NAMES = (
    "bert",
    "roberta",
    "xlm-roberta",
    "camembert",
    "electra",
    "distilbert",
    "deberta-v2",
    "mpnet",
)


def corpus_words(task: str = "sentiment") -> list[str]:
    words = {
        w
        for row in generate(task, 400, seed=0)
        for k, v in row.items()
        if k not in ("label", "tags")  # tags: the entities task's labels
        for w in (v if isinstance(v, list) else v.split())
    }
    return sorted(words)


# RoBERTa's special tokens, shared by XLM-R and CamemBERT
ROBERTA_SPECIALS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}


def _wordpiece(folder: Path, cls, words: list[str]):
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    return cls(vocab_file=str(vocab))


def _chars(words: list[str]) -> list[str]:
    return sorted({c for w in words for c in w})


def _byte_bpe(words: list[str]):
    """RoBERTa's byte-level BPE: every byte a token, every generated word one merge chain."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import RobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(specials + alphabet)}
    merges = []
    for word in words:
        piece = "Ġ" + word  # ByteLevel marks a leading space with Ġ
        current = piece[0]
        for char in piece[1:]:
            if current + char not in vocab:
                merges.append((current, char))
                vocab[current + char] = len(vocab)
            current += char
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return RobertaTokenizerFast(tokenizer_object=tok, add_prefix_space=True, **ROBERTA_SPECIALS)


def _unigram(words: list[str], specials: list[str], unk: str, single: str, pair: str):
    """A SentencePiece-style Unigram: whole words ("▁word") score above their characters."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    pieces = [(t, 0.0) for t in specials] + [("▁", -2.0)]
    pieces += [("▁" + w, -1.0) for w in words] + [(c, -5.0) for c in _chars(words)]
    tok = Tokenizer(models.Unigram(pieces, unk_id=specials.index(unk)))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(t, specials.index(t)) for t in specials[:3]]
    )
    return tok


def build_family(family: str, folder: Path, words: list[str], num_labels: int = 2, seed: int = 0):
    """(model, tokenizer) of `family`, saved in `folder`; model_type is `family`."""
    import torch
    import transformers as tf

    folder.mkdir(parents=True, exist_ok=True)
    positions = {"max_position_embeddings": 66}  # RoBERTa-style ids start at pad + 1
    if family in ("bert", "electra"):
        tokenizer = _wordpiece(
            folder, tf.BertTokenizerFast if family == "bert" else tf.ElectraTokenizerFast, words
        )
        config_cls = tf.BertConfig if family == "bert" else tf.ElectraConfig
        extra = {"embedding_size": 16} if family == "electra" else {}  # ELECTRA's projection
        config = config_cls(
            vocab_size=len(tokenizer), num_hidden_layers=LAYERS, **SHAPE, **positions, **extra
        )
    elif family == "distilbert":
        tokenizer = _wordpiece(folder, tf.DistilBertTokenizerFast, words)
        config = tf.DistilBertConfig(
            vocab_size=len(tokenizer),
            dim=SHAPE["hidden_size"],
            n_heads=SHAPE["num_attention_heads"],
            hidden_dim=SHAPE["intermediate_size"],
            n_layers=LAYERS,
            **positions,
        )
    elif family == "roberta":
        tokenizer = _byte_bpe(words)
        config = tf.RobertaConfig(
            vocab_size=len(tokenizer),
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            type_vocab_size=1,
            num_hidden_layers=LAYERS,
            **SHAPE,
            **positions,
        )
    elif family in ("xlm-roberta", "camembert"):
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok = _unigram(words, specials, "<unk>", "<s> $A </s>", "<s> $A </s> </s> $B </s>")
        cls = tf.XLMRobertaTokenizerFast if family == "xlm-roberta" else tf.CamembertTokenizerFast
        tokenizer = cls(tokenizer_object=tok, **ROBERTA_SPECIALS)
        config_cls = tf.XLMRobertaConfig if family == "xlm-roberta" else tf.CamembertConfig
        config = config_cls(
            vocab_size=len(tokenizer),
            pad_token_id=1,
            type_vocab_size=1,
            num_hidden_layers=LAYERS,
            **SHAPE,
            **positions,
        )
    elif family == "mpnet":  # WordPiece with RoBERTa's specials, no token types
        vocab = folder / "vocab.txt"
        specials = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>"]
        vocab.write_text("\n".join([*specials, *words]) + "\n")
        tokenizer = tf.MPNetTokenizerFast(vocab_file=str(vocab))
        config = tf.MPNetConfig(
            vocab_size=len(tokenizer),
            pad_token_id=1,
            # 32 buckets: MPNetEncoder.compute_position_bias hard-codes 32, whatever the config says
            num_hidden_layers=LAYERS,
            **SHAPE,
            **positions,
        )
    elif family == "deberta-v2":
        specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
        tok = _unigram(words, specials, "[UNK]", "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1")
        tokenizer = tf.DebertaV2TokenizerFast(
            tokenizer_object=tok,
            bos_token="[CLS]",
            eos_token="[SEP]",
            sep_token="[SEP]",
            cls_token="[CLS]",
            unk_token="[UNK]",
            pad_token="[PAD]",
            mask_token="[MASK]",
        )
        config = tf.DebertaV2Config(  # DeBERTa-v3-style: relative positions only, no segments
            vocab_size=len(tokenizer),
            pad_token_id=0,
            relative_attention=True,
            position_buckets=16,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            type_vocab_size=0,
            num_hidden_layers=LAYERS,
            **SHAPE,
            **positions,
        )
    else:
        raise ValueError(f"no tiny builder for {family!r}; known: {FAMILY_NAMES}")
    config.num_labels = num_labels
    torch.manual_seed(seed)
    model = tf.AutoModelForSequenceClassification.from_config(config).eval()
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return model, tokenizer

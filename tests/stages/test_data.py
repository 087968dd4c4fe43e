import csv

import pytest

from pipelines.core.config import load_recipe
from pipelines.core.errors import DataError
from pipelines.data.loading import label_ids, load_task_data, require_rows, tokenize
from tests.conftest import tiny_recipe, write_jsonl, write_recipe

ROWS = [{"text": f"sentence number {i}", "label": i % 2} for i in range(40)]


def _recipe(tmp_path, source, **data):
    raw = tiny_recipe(data={"source": str(source), **data})
    return load_recipe(write_recipe(tmp_path / "r.yaml", raw))


def _write(folder, split, rows, fmt):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{split}.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, rows)
    elif fmt == "json":
        import json

        path.write_text(json.dumps(rows))
    elif fmt == "tsv":  # GLUE style: no quoting at all
        lines = ["\t".join(rows[0])] + ["\t".join(str(v) for v in r.values()) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "csv":
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv", "parquet"])
def test_every_local_format_loads(tmp_path, fmt):
    folder = tmp_path / "data"
    rows = [{**r, "text": r["text"] + ' with "quotes", commas'} for r in ROWS]
    _write(folder, "train", rows, fmt)
    _write(folder, "validation", rows[:10], fmt)
    data = load_task_data(_recipe(tmp_path, folder))
    assert len(data.train) == 40 and len(data.eval) == 10
    assert data.train["text"][3] == 'sentence number 3 with "quotes", commas'
    assert list(data.train["labels"][:4]) == [0, 1, 0, 1]


def test_sentence_pairs_and_string_labels(tmp_path):
    folder = tmp_path / "pairs"
    rows = [
        {"premise": f"a {i}", "hypothesis": f"b {i}", "gold": ["no", "yes"][i % 2]}
        for i in range(20)
    ]
    _write(folder, "train", rows, "jsonl")
    _write(folder, "validation", rows[:4], "jsonl")
    raw = tiny_recipe(
        task={
            "text_columns": ["premise", "hypothesis"],
            "label_column": "gold",
            "labels": ["no", "yes"],
        },
        data={"source": str(folder)},
    )
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", raw))
    data = load_task_data(recipe)
    assert data.train.column_names == ["premise", "hypothesis", "labels"]
    assert list(data.train["labels"][:3]) == [0, 1, 0]
    from transformers import BertTokenizerFast

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "1", "2"]))
    tok = BertTokenizerFast(vocab_file=str(vocab))
    encoded = tokenize(data.train, tok, recipe)
    assert set(encoded[1]["token_type_ids"]) == {0, 1}  # second sentence marked


def test_single_file_is_split_by_eval_fraction(tmp_path):
    path = write_jsonl(tmp_path / "all.jsonl", ROWS)
    data = load_task_data(_recipe(tmp_path, path, eval_fraction=0.25))
    assert (len(data.train), len(data.eval)) == (30, 10)


def test_missing_split_file_names_path_and_candidates(tmp_path):
    folder = tmp_path / "data"
    _write(folder, "train", ROWS, "jsonl")
    with pytest.raises(
        DataError,
        match=r"no file for split 'validation'\. Looked for validation\.jsonl, validation\.json, .*validation\.parquet; the folder holds: train\.jsonl",
    ):
        load_task_data(_recipe(tmp_path, folder))


def test_missing_column_lists_found_columns(tmp_path):
    folder = tmp_path / "data"
    rows = [{"sentence": r["text"], "label": r["label"]} for r in ROWS]
    _write(folder, "train", rows, "jsonl")
    _write(folder, "validation", rows, "jsonl")
    with pytest.raises(
        DataError,
        match=r"column 'text' \(task\.text_columns\) is missing; the columns found are: sentence, label",
    ):
        load_task_data(_recipe(tmp_path, folder))


def test_label_out_of_range_names_row_and_labels():
    with pytest.raises(
        DataError,
        match=r"split 'train', row 3: label 5 is not valid\. task\.labels is \['neg', 'pos'\]",
    ):
        label_ids([0, 1, 5, 7], ["neg", "pos"], "train")


def test_unknown_string_label_names_row():
    with pytest.raises(DataError, match=r"row 2: label 'meh' is not valid"):
        label_ids(["pos", "meh"], ["neg", "pos"], "validation")


def test_string_labels_map_by_position():
    assert label_ids(["pos", "neg", 1], ["neg", "pos"], "train") == [1, 0, 1]


def test_subsampling_is_deterministic_by_seed(tmp_path):
    folder = tmp_path / "data"
    _write(folder, "train", ROWS, "jsonl")
    _write(folder, "validation", ROWS, "jsonl")
    a = load_task_data(_recipe(tmp_path, folder, max_train_samples=10)).train["text"]
    b = load_task_data(_recipe(tmp_path, folder, max_train_samples=10)).train["text"]
    raw = tiny_recipe(data={"source": str(folder), "max_train_samples": 10}, seed=1)
    c = load_task_data(load_recipe(write_recipe(tmp_path / "r1.yaml", raw))).train["text"]
    assert list(a) == list(b) and len(a) == 10
    assert list(a) != list(c)


def test_require_rows_names_split_and_size():
    with pytest.raises(DataError, match=r"split 'train' has 3 rows, fewer than 16"):
        require_rows([1, 2, 3], "train", 16, "teacher.batch_size is 16")


def test_tokenize_truncates_without_padding(tmp_path):
    recipe = load_recipe(
        write_recipe(
            tmp_path / "r.yaml",
            tiny_recipe(data={"source": "synthetic:sentiment", "max_length": 8}),
        )
    )
    data = load_task_data(recipe)
    from pipelines.core.models import build_word_vocab

    tok = build_word_vocab(list(data.train["text"]), tmp_path / "wp")
    encoded = tokenize(data.train, tok, recipe)
    lengths = [len(x) for x in encoded["input_ids"]]
    assert max(lengths) == 8 and min(lengths) < 8  # truncated, and not padded to a fixed length


def test_synthetic_source_unknown_name(tmp_path):
    recipe = load_recipe(
        write_recipe(tmp_path / "r.yaml", tiny_recipe(data={"source": "synthetic:nope"}))
    )
    with pytest.raises(
        DataError,
        match=r"unknown synthetic task 'nope'; known: \['entities', 'pairs', 'rating', 'sentiment', 'sentiment_hard', 'tags', 'topic', 'verdict'\]",
    ):
        load_task_data(recipe)


def test_hard_synthetic_task_labels_follow_the_deciding_clause_with_some_noise():
    from pipelines.data.synthetic import CONTRAST, LABEL_NOISE, NEGATIVE, POSITIVE, generate

    rows = generate("sentiment_hard", 4000, seed=3)
    assert rows == generate("sentiment_hard", 4000, seed=3)  # deterministic in the seed
    contrast = [r for r in rows if " but " in r["text"] or "although" in r["text"]]
    assert abs(len(contrast) / len(rows) - CONTRAST) < 0.03
    # "X , but Y": Y decides. Where Y is not negated, its word gives the label, except the noise.
    checked = agree = 0
    for row in rows:
        head, sep, tail = row["text"].partition(" , but ")
        if not sep or " not " in f" {tail} ":
            continue
        word = next(w for w in tail.split() if w in POSITIVE or w in NEGATIVE)
        checked += 1
        agree += int((word in POSITIVE) == bool(row["label"]))
    assert checked > 300
    assert abs((1 - agree / checked) - LABEL_NOISE) < 0.03  # flipped labels: the noise, no more

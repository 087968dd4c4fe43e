import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from distill.layer_map import LAYER_MAPS, resolve
from distill.student import check_same_vocab, from_config, from_teacher_layers


def tiny_teacher(layers=4, hidden=32, heads=2, vocab=50):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=64,
        num_labels=2,
        max_position_embeddings=64,
    )
    return BertForSequenceClassification(config)


def test_layer_map_registry_entries():
    assert sorted(LAYER_MAPS) == ["last", "skip", "uniform"]
    assert resolve("uniform", 3, 6) == [(0, 1), (1, 3), (2, 5)]
    assert resolve("last", 3, 6) == [(0, 3), (1, 4), (2, 5)]
    assert resolve("skip", 3, 6) == [(0, 0), (1, 2), (2, 4)]
    assert resolve("auto", 3, 6, copied_layers=[0, 2, 4]) == [(0, 0), (1, 2), (2, 4)]
    assert resolve("auto", 2, 4) == [(0, 1), (1, 3)]
    assert resolve([[0, 5], [1, 5]], 2, 6) == [(0, 5), (1, 5)]


def test_layer_map_messages_name_the_valid_range():
    with pytest.raises(
        ValueError,
        match=r"teacher layer 6 is out of range; the teacher has 6 layers, valid indices 0\.\.5",
    ):
        resolve([[0, 6]], 3, 6)
    with pytest.raises(
        ValueError,
        match=r"student layer 3 is out of range; the student has 3 layers, valid indices 0\.\.2",
    ):
        resolve([[3, 0]], 3, 6)
    with pytest.raises(
        ValueError, match=r"unknown map 'evenly'; known: \['last', 'skip', 'uniform'\]"
    ):
        resolve("evenly", 3, 6)


def test_teacher_layers_copies_weights_exactly():
    teacher = tiny_teacher()
    student = from_teacher_layers(teacher, [0, 2])
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for key, value in s_state.items():
        source = key.replace("encoder.layer.1.", "encoder.layer.2.")
        assert torch.equal(value, t_state[source]), key
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    student.bert.encoder.layer[0].output.dense.weight.data.add_(1.0)  # a copy, not shared storage
    assert not torch.equal(
        student.bert.encoder.layer[0].output.dense.weight,
        teacher.bert.encoder.layer[0].output.dense.weight,
    )


def test_teacher_layers_out_of_range():
    with pytest.raises(
        ValueError,
        match=r"student\.layers: \[4\] out of range; the teacher has 4 layers, valid indices 0\.\.3",
    ):
        from_teacher_layers(tiny_teacher(), [0, 4])


def test_unsupported_architecture_is_named():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    gpt2 = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(
        ValueError,
        match=r"architecture GPT2ForSequenceClassification \(model_type 'gpt2'\) is not supported; supported BERT-family model types: bert",
    ):
        from_teacher_layers(gpt2, [0])


def test_config_student_truncates_teacher_embeddings():
    teacher = tiny_teacher(hidden=32)
    student = from_config(teacher, 1, 16, 2, 32, "truncate")
    emb_t, emb_s = (
        teacher.bert.embeddings.word_embeddings.weight,
        student.bert.embeddings.word_embeddings.weight,
    )
    assert emb_s.shape == (50, 16) and torch.equal(emb_s, emb_t[:, :16])
    assert student.config.num_labels == 2 and student.config.vocab_size == 50
    fresh = from_config(teacher, 1, 16, 2, 32, "none")
    assert not torch.equal(fresh.bert.embeddings.word_embeddings.weight, emb_t[:, :16])


def test_config_student_pca_embeddings_keep_the_teachers_geometry():
    teacher = tiny_teacher(hidden=32)
    student = from_config(teacher, 1, 16, 2, 32, "pca")
    emb_t = teacher.bert.embeddings.word_embeddings.weight.detach()
    emb_s = student.bert.embeddings.word_embeddings.weight.detach()
    assert emb_s.shape == (50, 16)
    centred = emb_t - emb_t.mean(0)
    # the kept 16 directions explain more variance than the first 16 raw dimensions would
    assert (emb_s - emb_s.mean(0)).pow(2).sum() > centred[:, :16].pow(2).sum()
    # and pairwise dot products of centred rows are preserved better than by truncation
    gram_t = centred @ centred.T
    err_pca = (gram_t - (emb_s - emb_s.mean(0)) @ (emb_s - emb_s.mean(0)).T).norm()
    err_trunc = (gram_t - centred[:, :16] @ centred[:, :16].T).norm()
    assert err_pca < err_trunc
    # position embeddings go through the same projection (sums of tables stay consistent)
    pos_t = teacher.bert.embeddings.position_embeddings.weight.detach()
    pos_s = student.bert.embeddings.position_embeddings.weight.detach()
    assert pos_s.shape == (64, 16) and not torch.equal(pos_s, pos_t[:, :16])
    with pytest.raises(ValueError, match=r"unknown 'svd'; known: \['none', 'truncate', 'pca'\]"):
        from_config(teacher, 1, 16, 2, 32, "svd")


def test_different_vocabularies_are_refused(tmp_path):
    from transformers import BertTokenizerFast

    def tokenizer(words, name):
        path = tmp_path / f"{name}.txt"
        path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]))
        return BertTokenizerFast(vocab_file=str(path))

    same = tokenizer(["a", "b"], "t")
    check_same_vocab(same, tokenizer(["a", "b"], "s1"), "student.model")
    with pytest.raises(
        ValueError,
        match=r"student\.model: the student's vocabulary differs from the teacher's \(7 vs 7 tokens; 1 only in the student, 1 only in the teacher\)",
    ):
        check_same_vocab(same, tokenizer(["a", "c"], "s2"), "student.model")


def test_every_student_kind_is_reached_from_the_recipe_and_builds(tmp_path):
    """STUDENT_KINDS: each `student.init` value (and `init_weights: prune`) names a kind, each
    kind is reachable, and the recipe's choice is what gets built."""
    from typing import get_args

    from modelkit.errors import InputError
    from pipelines.core.config import StudentConfig, load_recipe
    from pipelines.distillation.student_choice import STUDENT_KINDS, build_student, student_kind
    from tests.conftest import tiny_recipe, write_recipe

    inits = set(get_args(StudentConfig.model_fields["init"].annotation))
    assert inits | {"prune"} == set(STUDENT_KINDS)

    def recipe(**student):
        return load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe(student=student)))

    shape = {"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2}
    config = recipe(init="config", config={**shape, "intermediate_size": 32}, layers=[1])
    pruned = recipe(
        init="config", config={**shape, "intermediate_size": 32}, layers=[1], init_weights="prune"
    )
    copied = recipe(init="teacher_layers", layers=[0, 3])
    assert [student_kind(r) for r in (config, pruned, copied)] == [
        "config",
        "prune",
        "teacher_layers",
    ]
    teacher = tiny_teacher()
    student, layers = build_student(copied, teacher, None)
    assert student.config.num_hidden_layers == 2 and layers == [0, 3]
    student, layers = build_student(config, teacher, None)
    assert student.config.hidden_size == 16 and layers is None
    object.__setattr__(copied.student, "init", "gru")  # a kind nobody registered
    with pytest.raises(InputError, match=r"unknown student kind 'gru'; known: \['bilstm', 'cnn'"):
        build_student(copied, teacher, None)

"""Checks that fail a run in seconds, before any stage trains: every model and dataset the planned
stages read can be reached, and a student that cannot be built from this teacher is refused from
the teacher's config alone (not an hour later, when the distill stage builds it).

Why one module: these are the checks the runner (and `distillery validate`) makes before any
work, one function per thing checked; split, the order they run in would be read across files."""

from __future__ import annotations

from modelkit.errors import InputError
from modelkit.files import VOCAB_FILES
from pipelines.core.config import Recipe
from pipelines.core.errors import ConfigError


def preflight_sources(recipe: Recipe, names: list[str]) -> None:
    """Resolve every model and dataset the planned stages read; one error for all hub problems."""
    from pipelines.core.models import resolve_model, teacher_sources
    from pipelines.core.sources import dataset_source, preflight

    sources = [(dataset_source(recipe.data.source, recipe.data.subset), "dataset")]
    if "teacher" in names:
        sources.extend(teacher_sources(recipe))
    if "distill" in names and recipe.student.init == "pretrained" and recipe.student.model:
        sources.append(
            (resolve_model(recipe.student.model, recipe.security, "student.model"), "model")
        )
    preflight(sources)
    if "teacher" in names and recipe.teacher.init == "config":
        check_trainable_size(recipe.teacher.config)
    if "distill" in names or "search" in names:
        preflight_models(recipe)
    if "distill" in names and recipe.student.init == "pretrained":
        preflight_student_vocab(recipe)  # unless it reads its own (student.tokenizer: own)
    if "distill" in names:
        preflight_unlabelled(recipe)


def teacher_config(recipe: Recipe):
    """The teacher's config without its weights: from the recipe's shape, a local folder or the
    Hub cache; None when only the Hub could say (offline, not cached)."""
    t = recipe.teacher
    if t.init == "config":
        from transformers import BertConfig

        # as pipelines.core.models.bert_from_shape builds it
        positions = max(recipe.data.max_length, 64)
        return BertConfig(**t.config.model_dump(), max_position_embeddings=positions)
    from transformers import AutoConfig

    from pipelines.core.models import resolve_model

    source = resolve_model(t.model, recipe.security, "teacher.model")
    try:
        return AutoConfig.from_pretrained(
            source.value,
            trust_remote_code=recipe.security.trust_remote_code,
            local_files_only=source.kind == "local",
        )
    except Exception:
        if source.kind == "local":
            raise
        return None  # a hub id not cached here: checked when the teacher stage loads it


def preflight_models(recipe: Recipe) -> None:
    """The student can be built from this teacher, checked from configs alone (no weights):
    a supported encoder family, `student.layers` and an explicit `distill.layer_map` inside the
    teacher's depth, and a pruned shape the teacher can give. `distillery validate` runs it too.
    """
    from distill.layer_map import resolve as resolve_layer_map
    from distill.prune import check_prunable
    from distill.student import check_teacher_layers
    from modelkit.families import family_of, takes_token_type_ids

    if recipe.student.init == "pretrained" and recipe.student.model:
        preflight_checkpoint_student(recipe)
    config = teacher_config(recipe)
    if config is None:
        return
    s, d = recipe.student, recipe.distill
    try:
        family_of(config, "teacher.model")
        pairs = len(recipe.task.text_columns) == 2
        if s.init == "config" and pairs and not takes_token_type_ids(config):
            raise InputError(
                "student.init: config builds a BERT student, which tells the two sentences "
                "of a pair apart by token_type_ids; this teacher "
                f"('{config.model_type}') takes none, so its tokenizer's segment ids would "
                "reach a table that never learnt them. Use student.init: teacher_layers (a "
                "student of the teacher's own architecture) for sentence pairs."
            )
        n_teacher = config.num_hidden_layers
        if s.init == "teacher_layers":
            check_teacher_layers(s.layers, n_teacher)
        if s.init_weights == "prune":
            check_prunable(config, s.config, s.layers)
        n_student = {"teacher_layers": len(s.layers), "config": s.config.num_hidden_layers}
        if s.init in n_student and d.matches:
            copied = s.layers if s.init == "teacher_layers" or s.init_weights == "prune" else None
            resolve_layer_map(d.layer_map, n_student[s.init], n_teacher, copied)
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    preflight_model_limits(recipe, config)
    preflight_distill_extras(recipe, config)
    if recipe.search.enabled:  # every candidate can be cut from this teacher
        from pipelines.search.space import candidates

        candidates(recipe.search.space, config)
        longest = getattr(config, "max_position_embeddings", None)
        if longest and recipe.search.seq_len > longest:
            raise ConfigError(
                f"search.seq_len: {recipe.search.seq_len} tokens, but the teacher takes at most "
                f"{longest} (max_position_embeddings); time at {longest} or fewer."
            )
        if recipe.search.backend == "openvino":
            from quantize.openvino import available

            missing = available()
            if missing:
                raise ConfigError(f"search.backend: openvino: {missing}")


def preflight_model_limits(recipe: Recipe, config) -> None:
    """What the teacher (and so a student cut from it) cannot take, from its config and the
    tokenizer's files alone: sequence lengths past its position table, a tokenizer whose ids run
    past its embedding table, a local folder with no tokenizer at all."""
    longest = getattr(config, "max_position_embeddings", None)
    checked = [("data.max_length", [recipe.data.max_length])]
    if recipe.bench.seq_lens:  # null: by bench.grid (a full grid's longer cells are errors)
        checked.append(("bench.seq_lens", recipe.bench.seq_lens))
    if longest:
        for key, lengths in checked:
            over = [n for n in lengths if n > longest]
            if over:
                raise ConfigError(
                    f"{key}: {', '.join(map(str, over))} tokens, but the teacher (and a student cut from it) takes at "
                    f"most {longest} (max_position_embeddings); use {longest} or fewer."
                )
    t = recipe.teacher
    if t.init == "config":
        check_trainable_size(t.config)
    if t.init != "pretrained" or not t.model:
        return  # a tokenizer built from the data is sized with the model
    from pipelines.core.models import model_source

    key = "teacher.tokenizer" if t.tokenizer else "teacher.model"
    source = model_source(t.tokenizer or t.model, key)
    if source.kind != "local" or not source.path.is_dir():
        return  # a hub tokenizer: checked when the teacher stage loads it
    if not any((source.path / name).is_file() for name in VOCAB_FILES):
        raise ConfigError(
            f"{key}: {source.path} holds no tokenizer (none of {', '.join(VOCAB_FILES)}); "
            "save the tokenizer the model was trained with there (tokenizer.save_pretrained), "
            "or point teacher.tokenizer at a folder or hub id that has it."
        )
    size = tokenizer_size(source.path)
    rows = getattr(config, "vocab_size", None)
    if size and rows and size > rows:
        raise ConfigError(
            f"{key}: the tokenizer has {size} tokens but the model's embedding table has "
            f"{rows} rows, so token ids {rows}..{size - 1} would index past it. Use the "
            "tokenizer the model was trained with (leave teacher.tokenizer unset)."
        )


TRAIN_BYTES_PER_PARAMETER = 16  # fp32 weights, gradients and AdamW's two moments
WORD_VOCAB = 30_000  # the most a word vocabulary built from the data holds, for the estimate


def check_trainable_size(shape) -> None:
    """A teacher built from `teacher.config` must fit in this machine's memory to train: a few
    numbers in a recipe (48 layers of width 8192) would otherwise ask for 600 GB an hour later."""
    import psutil

    h, ffn, layers = shape.hidden_size, shape.intermediate_size, shape.num_hidden_layers
    parameters = WORD_VOCAB * h + layers * (4 * h * h + 2 * h * ffn)
    need, have = parameters * TRAIN_BYTES_PER_PARAMETER, psutil.virtual_memory().total
    if need > have:
        raise ConfigError(
            f"teacher.config: {layers} layers of width {h} (feed-forward {ffn}) are about "
            f"{parameters / 1e6:,.0f}M parameters, {need / 2**30:,.0f} GiB to train, and this "
            f"machine has {have / 2**30:,.0f} GiB of memory; choose a smaller shape."
        )


def tokenizer_size(folder) -> int | None:
    """Tokens of the tokenizer saved in `folder` (added tokens included, as `len(tokenizer)`
    counts them), read from its files with `tokenizers` (no torch); None if not countable."""
    import json

    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        try:
            return Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size(True)
        except Exception:  # a tokenizer.json this version cannot read: the stage will say why
            return None
    added = folder / "added_tokens.json"
    extra = len(json.loads(added.read_text())) if added.is_file() else 0
    if (folder / "vocab.txt").is_file():
        return len((folder / "vocab.txt").read_text().splitlines()) + extra
    if (folder / "vocab.json").is_file():
        return len(json.loads((folder / "vocab.json").read_text())) + extra
    return None


def preflight_distill_extras(recipe: Recipe, teacher_config) -> None:
    """What augmentation and QAT need: a masked LM for `mlm`, NNCF for `distill.qat`."""
    d = recipe.distill
    if d.augment.factor > 0 and "mlm" in d.augment.methods and not d.augment.mlm_model:
        archs = getattr(teacher_config, "architectures", None) or []
        if not any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in archs):
            raise ConfigError(
                "distill.augment.methods: 'mlm' needs a masked language model with the teacher's "
                f"vocabulary, and the teacher ({', '.join(archs) or 'built from a config'}) has "
                "no MLM head; set distill.augment.mlm_model (a hub id or a local folder, e.g. "
                "bert-base-uncased for a BERT-base teacher) or drop 'mlm' from the methods."
            )
    if d.qat.epochs > 0:
        from quantize.qat import available

        missing = available()
        if missing:
            raise ConfigError(f"distill.qat.epochs is {d.qat.epochs}: {missing}")


def preflight_checkpoint_student(recipe: Recipe) -> None:
    """A local `pretrained` student from its files alone: `model_layers` inside its depth,
    `data.max_length` inside its positions, a tokenizer of its own with `student.tokenizer: own`."""
    from transformers import AutoConfig

    from pipelines.core.models import resolve_model

    s = recipe.student
    source = resolve_model(s.model, recipe.security, "student.model")
    if source.kind != "local":
        return  # a hub id: checked when the distill stage loads it
    trust = recipe.security.trust_remote_code
    config = AutoConfig.from_pretrained(
        source.value, trust_remote_code=trust, local_files_only=True
    )
    depth, longest = config.num_hidden_layers, getattr(config, "max_position_embeddings", 0)
    if [i for i in s.model_layers or [] if i >= depth]:
        raise ConfigError(
            f"student.model_layers: {s.model_layers} reaches past the checkpoint's {depth} "
            f"layers; use indices 0..{depth - 1}."
        )
    if longest and recipe.data.max_length > longest:
        raise ConfigError(
            f"data.max_length: {recipe.data.max_length} tokens, but the student checkpoint takes "
            f"at most {longest} (max_position_embeddings); use {longest} or fewer."
        )
    if s.tokenizer == "own" and not any((source.path / n).is_file() for n in VOCAB_FILES):
        raise ConfigError(
            f"student.model: {source.path} holds no tokenizer (none of {', '.join(VOCAB_FILES)}) "
            "for student.tokenizer: own; save the checkpoint's tokenizer there, or use "
            "student.tokenizer: teacher."
        )


def preflight_student_vocab(recipe: Recipe) -> None:
    """Case: a `pretrained` student whose vocabulary differs from the teacher's is refused before
    the teacher trains (not an hour later, when the distill stage builds the student)."""
    from distill.student import check_same_vocab
    from pipelines.core.models import load_tokenizer, model_source, resolve_model

    t = recipe.teacher
    if recipe.student.tokenizer == "own":
        return  # nothing to share: the student reads its own tokenizer
    if t.tokenizer:
        teacher_source = model_source(t.tokenizer, "teacher.tokenizer")
    elif t.init == "pretrained" and t.model:
        teacher_source = resolve_model(t.model, recipe.security, "teacher.model")
    else:
        return  # a word vocabulary built from the data: checked when the student is built
    student_source = resolve_model(recipe.student.model, recipe.security, "student.model")
    try:
        check_same_vocab(
            load_tokenizer(teacher_source, recipe.security),
            load_tokenizer(student_source, recipe.security),
            "student.model",
        )
    except InputError as exc:
        raise ConfigError(str(exc)) from None


def preflight_unlabelled(recipe: Recipe) -> None:
    """`distill.unlabelled` read once: a missing file, no text, a missing column fail here."""
    if recipe.distill.unlabelled:
        from pathlib import Path

        from pipelines.data.unlabelled import read_unlabelled

        read_unlabelled(Path(recipe.distill.unlabelled), recipe.task.text_columns)


def preflight_data(recipe: Recipe) -> None:
    """Every mismatch between the task section and a local data source's columns and labels,
    in one DataError; an eval split too small to tell artifacts apart is logged (a warning)."""
    import logging

    from pipelines.core.errors import DataError
    from pipelines.core.sources import dataset_source
    from pipelines.data.confidence import eval_size_note
    from pipelines.data.survey import eval_rows, read_table, recipe_problems

    preflight_unlabelled(recipe)
    d = recipe.data
    if d.source.startswith("synthetic:") or dataset_source(d.source, d.subset).kind == "hub":
        return  # generated rows match by construction; a hub dataset is checked when loaded
    table = read_table(d.source, d.subset, d.train_split, d.eval_split)
    problems = recipe_problems(recipe, table)
    if problems:
        raise DataError(
            f"{len(problems)} problem(s) between the recipe and its data:\n  - "
            + "\n  - ".join(problems)
        )
    rows = eval_rows(table, d.eval_fraction)
    note = eval_size_note(min(rows, d.max_eval_samples or rows))
    if note:
        logging.getLogger("distillery").warning(note)

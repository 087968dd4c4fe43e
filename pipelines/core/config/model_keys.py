"""The models of a run: the teacher, the student, and the shape of a BERT built from scratch."""

from typing import Literal

from distill.student import EMBEDDING_INITS, check_layer_count
from distill.token_students import VECTOR_SOURCES
from modelkit.errors import InputError
from pipelines.core.config.run_keys import TrainingKnobs
from pipelines.core.errors import ConfigError, shown
from pipelines.core.schema import Bool, Float, Int, Section, Str, checks, f, names


class ModelShape(Section):
    """Shape of a BERT built from scratch (demo teacher, `config` students)."""

    num_hidden_layers: Int = f(4, min=1, max=48, help="transformer layers")
    hidden_size: Int = f(256, min=8, max=8192, help="width; divisible by num_attention_heads")
    num_attention_heads: Int = f(4, min=1, max=128, help="attention heads")
    intermediate_size: Int = f(1024, min=8, max=32768, help="feed-forward width")

    @checks
    def check(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}; pick a head count that divides the width."
            )


class TeacherConfig(TrainingKnobs):
    """The teacher model; its training knobs (epochs, learning_rate, ...) are `TrainingKnobs`'."""

    model: Str | None = f(None, help="hub id or local HF folder; null with init: config")
    init: Literal["pretrained", "config"] = f(
        "pretrained", help="pretrained weights or a fresh BERT"
    )
    config: ModelShape = f(ModelShape, help="shape when init: config")
    tokenizer: Str | None = f(
        None, help="tokenizer folder; default: the model's, or trained on the data"
    )
    finetune: Bool = f(True, help="false: the model is already fine-tuned, only evaluate it")
    train_rows: Int | None = f(
        None,
        min=1,
        hash="when_set",
        help="fine-tune on this many train rows (seeded sample); null = all",
    )
    min_lift: Float | None = f(
        0.0,
        min=0.0,
        max=1.0,
        help="single_label: distill starts only if the 95% lower bound of the teacher's eval "
        "accuracy clears the majority-class share by this much; null turns the guard off",
        hash="never",
    )

    @checks
    def check(self) -> None:
        if self.init == "pretrained" and not self.model:
            raise ConfigError(
                "teacher.model: missing; give a hub id or local folder, or set teacher.init: config."
            )


class TokenShape(Section):
    """Shape of a token-vector student (`student.init` static, cnn or bilstm; distill/token_models.py)."""

    vectors: names(*VECTOR_SOURCES) = f(
        "forward",
        help="token vectors: each token through the teacher (Model2Vec), or its input embeddings",
    )
    width: Int = f(128, min=4, max=4096, help="token vector width after PCA (<= the teacher's)")
    token_weights: Bool = f(True, help="static: a learned weight per token in the mean")
    kernel_sizes: list[Int] = f([3, 4, 5], min=1, max=16, help="cnn: convolution widths, in tokens")
    filters: Int = f(100, min=1, max=4096, help="cnn: filters per convolution width")
    lstm_hidden: Int = f(128, min=1, max=4096, help="bilstm: hidden units per direction")
    head_hidden: Int = f(0, min=0, max=4096, help="hidden layer of the head; 0 = a linear head")
    dropout: Float = f(0.1, min=0.0, max=0.9, help="dropout before the head's layers")

    @checks
    def check(self) -> None:
        if not self.kernel_sizes:
            raise ConfigError(
                "student.tokens.kernel_sizes: give at least one width, e.g. [3, 4, 5]."
            )


class StudentConfig(Section):
    init: Literal["teacher_layers", "config", "pretrained", "static", "cnn", "bilstm"] = f(
        "teacher_layers",
        help="copy teacher layers, fresh BERT from config, a checkpoint, or a token-vector "
        "student: static (Model2Vec-style mean), cnn (Kim) or bilstm (Tang et al.)",
    )
    layers: list[Int] = f([0, 2, 4], min=0, help="teacher layers copied when init: teacher_layers")
    config: ModelShape = f(ModelShape, help="shape when init: config")
    init_embeddings: names(*EMBEDDING_INITS) = f(
        "truncate",
        help="config students: teacher embeddings truncated, or PCA-projected, to the width",
    )
    init_weights: Literal["random", "prune"] = f(
        "random",
        help="config students: random init, or cut from the teacher (most active channels, "
        "heads, neurons of student.layers; distill/prune.py)",
        hash="when_set",
    )
    prune_rows: Int = f(
        512,
        min=1,
        max=100000,
        help="training rows the teacher runs on to rank what to keep",
        hash="when_set",
    )
    model: Str | None = f(
        None,
        help="checkpoint when init: pretrained (the teacher's vocabulary, or student.tokenizer: own)",
    )
    model_layers: list[Int] | None = f(
        None,
        min=0,
        help="init: pretrained: the checkpoint's layers kept, in order; null = all of them",
        hash="when_set",
    )
    tokenizer: Literal["teacher", "own"] = f(
        "teacher",
        help="init: pretrained: 'own' trains the student on its checkpoint's tokenizer (teacher "
        "logits from the teacher's, per row of text; logit KD only); 'teacher': one tokenizer "
        "feeds both",
        hash="when_set",
    )
    tokens: TokenShape = f(
        TokenShape, help="shape when init: static, cnn or bilstm", hash="when_set"
    )

    @checks
    def check(self) -> None:
        if self.init == "pretrained" and not self.model:
            raise ConfigError("student.model: required when student.init is 'pretrained'.")
        self.check_pretrained_only()
        if self.init_weights == "prune":
            if self.init != "config":
                raise ConfigError(
                    f"student.init_weights: 'prune' applies to init: config students; this one "
                    f"is init: {self.init}. Remove init_weights or set init: config."
                )
            if self.init_embeddings != "truncate":
                raise ConfigError(
                    f"student.init_embeddings: {shown(self.init_embeddings)} conflicts with "
                    "init_weights: prune, which cuts the embeddings with the same channels as the "
                    "layers; remove init_embeddings."
                )
            try:
                check_layer_count(self.layers, self.config.num_hidden_layers)
            except InputError as exc:
                raise ConfigError(f"{exc} (init_weights: prune)") from None
        if self.init == "teacher_layers":
            if not self.layers:
                raise ConfigError(
                    "student.layers: give at least one teacher layer index, e.g. [0, 2, 4]."
                )
            if sorted(set(self.layers)) != self.layers:
                raise ConfigError(
                    f"student.layers: {shown(self.layers)} must be distinct and increasing, e.g. [0, 2, 4]."
                )

    def check_pretrained_only(self) -> None:
        """`model_layers` and `tokenizer: own` describe a checkpoint student (init: pretrained)."""
        used = []
        if self.model_layers is not None:
            used.append(("model_layers", self.model_layers))
        if self.tokenizer == "own":
            used.append(("tokenizer", "own"))
        for key, value in used:
            if self.init != "pretrained":
                raise ConfigError(
                    f"student.{key}: {shown(value)} applies to init: pretrained students (a "
                    f"checkpoint in student.model); this one is init: {self.init}. Remove the "
                    "key, or set student.init: pretrained."
                )
        layers = self.model_layers
        if layers is not None and (not layers or sorted(set(layers)) != layers):
            raise ConfigError(
                f"student.model_layers: {shown(layers)} must be distinct and increasing, e.g. "
                "[0, 2, 4]; leave it out to keep every layer of the checkpoint."
            )

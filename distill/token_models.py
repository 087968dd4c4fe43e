"""Students that are not transformers: one vector per token of the teacher's vocabulary, then a
static mean, a Kim-style CNN or a BiLSTM, then a small head (Model2Vec; Kim 2014; Tang et al. 2019).

    model = TokenStudentForSequenceClassification(TokenStudentConfig(student_kind="cnn", ...))
    model(input_ids=ids, attention_mask=mask).logits        # [batch, num_labels]

They read the teacher's tokenizer (`input_ids`, `attention_mask`; no token types), so the ONNX
graph has the transformers' input names and the bundle's `predict.py` runs it as it is. They are
`PreTrainedModel`s so that `save_pretrained` writes `model.safetensors` and a small
`config.json` (no pickle) and the HF Trainer, the evaluation and the bench load them as they load
a BERT; `distill.token_students.register` makes `AutoModelForSequenceClassification` know them
(no remote code: the classes are ours). Every pooling respects the attention mask, so a row
gives the same logits alone and in a right-padded batch (the export's parity reads that).

Imports torch and transformers at module level: import it through `distill.token_students`,
which recipe validation can read without them.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

# distill.token_students.MODEL_TYPE (tests/lib/test_token_students.py checks they agree): that
# module imports this one, so this one cannot import it back
MODEL_TYPE = "distillery_token_student"


class TokenStudentConfig(PretrainedConfig):
    """The shape of a token-vector student; `student_kind` is static, cnn or bilstm.

    `hidden_size` is the width of the pooled vector the head reads and `num_hidden_layers` the
    layers between the vectors and the pooling (0 static, 1 cnn/bilstm), so the pipeline's facts
    (parameters, width, depth) read as a transformer's do."""

    model_type = MODEL_TYPE

    def __init__(
        self,
        student_kind: str = "static",
        vocab_size: int = 30522,
        width: int = 256,
        token_weights: bool = True,
        kernel_sizes: tuple[int, ...] | list[int] = (3, 4, 5),
        filters: int = 100,
        lstm_hidden: int = 128,
        head_hidden: int = 0,
        dropout: float = 0.1,
        pad_token_id: int = 0,
        **kwargs,
    ) -> None:
        self.student_kind = student_kind
        self.vocab_size = vocab_size
        self.width = width
        self.token_weights = token_weights
        self.kernel_sizes = list(kernel_sizes)
        self.filters = filters
        self.lstm_hidden = lstm_hidden
        self.head_hidden = head_hidden
        self.dropout = dropout
        pooled = {
            "static": width,
            "cnn": filters * len(self.kernel_sizes),
            "bilstm": 2 * lstm_hidden,
        }
        if student_kind not in pooled:
            raise ValueError(f"student_kind {student_kind!r}: known {sorted(pooled)}")
        self.hidden_size = pooled[student_kind]
        self.num_hidden_layers = 0 if student_kind == "static" else 1
        super().__init__(pad_token_id=pad_token_id, **kwargs)


def _static(x: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean of the token vectors (each scaled by its learned weight) over the real tokens.
    x [batch, seq, width], mask [batch, seq] float → [batch, width]."""
    m = mask.unsqueeze(-1)
    if weights is not None:
        m = m * weights
    return (x * m).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)


class KimCNN(nn.Module):
    """Convolutions of several widths over the token vectors, ReLU, max over time (Kim 2014).

    Padding: each convolution runs on the zero-padded sequence (`padding=k-1`, a full
    convolution) with the padded tokens' vectors zeroed, and only windows that hold at least one
    real token enter the max; after a ReLU every value is ≥ 0, so zeroing the others cannot raise
    the max. A row thus gives the same vector alone and padded, whatever the padding side."""

    def __init__(self, width: int, filters: int, kernel_sizes: list[int]) -> None:
        super().__init__()
        self.kernel_sizes = list(kernel_sizes)
        self.convs = nn.ModuleList(
            nn.Conv1d(width, filters, k, padding=k - 1) for k in kernel_sizes
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = (x * mask.unsqueeze(-1)).transpose(1, 2)  # [batch, width, seq]
        m = mask.unsqueeze(1)  # [batch, 1, seq]
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            # window j covers tokens j-k+1 .. j: real if any of them is
            real = nn.functional.max_pool1d(nn.functional.pad(m, (k - 1, k - 1)), k, stride=1)
            pooled.append((torch.relu(conv(x)) * real).amax(dim=2))
        return torch.cat(pooled, dim=1)


class BiLSTM(nn.Module):
    """One bidirectional LSTM layer, max-pooled over the real tokens (Tang et al. 2019).

    Written as two one-way LSTMs, the second reading each row reversed within its own length,
    because a `bidirectional=True` LSTM run over a right-padded batch starts its backward pass
    on the padding (and `pack_padded_sequence` does not export to ONNX with dynamic lengths).
    Rows are right-padded (`modelkit.batching`, the one padding rule of every inference path)."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.forward_lstm = nn.LSTM(width, hidden, batch_first=True)
        self.backward_lstm = nn.LSTM(width, hidden, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1, keepdim=True).long()  # [batch, 1]
        positions = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # [1, seq]
        # position t of the reversed row reads token length-1-t; the padding stays where it is
        source = torch.where(positions < lengths, lengths - 1 - positions, positions)
        index = source.unsqueeze(-1).expand(-1, -1, x.shape[2])
        h_fwd, _ = self.forward_lstm(x)
        h_rev, _ = self.backward_lstm(torch.gather(x, 1, index))
        h_bwd = torch.gather(h_rev, 1, source.unsqueeze(-1).expand(-1, -1, h_rev.shape[2]))
        h = torch.cat([h_fwd, h_bwd], dim=2)  # LSTM outputs lie in (-1, 1)
        return (h - 4.0 * (1.0 - mask.unsqueeze(-1))).amax(dim=1)  # padding never the max


class TokenStudentForSequenceClassification(PreTrainedModel):
    """Token vectors → static mean / KimCNN / BiLSTM → dropout → (Linear → ReLU) → Linear."""

    config_class = TokenStudentConfig
    base_model_prefix = "token_student"
    main_input_name = "input_ids"

    def __init__(self, config: TokenStudentConfig) -> None:
        super().__init__(config)
        c = config
        self.embeddings = nn.Embedding(c.vocab_size, c.width, padding_idx=c.pad_token_id)
        self.token_weight = None
        if c.student_kind == "static" and c.token_weights:
            self.token_weight = nn.Embedding(c.vocab_size, 1)
        self.encoder = None
        if c.student_kind == "cnn":
            self.encoder = KimCNN(c.width, c.filters, c.kernel_sizes)
        elif c.student_kind == "bilstm":
            self.encoder = BiLSTM(c.width, c.lstm_hidden)
        layers: list[nn.Module] = [nn.Dropout(c.dropout)]
        width = c.hidden_size
        if c.head_hidden:
            layers += [nn.Linear(width, c.head_hidden), nn.ReLU(), nn.Dropout(c.dropout)]
            width = c.head_hidden
        layers.append(nn.Linear(width, c.num_labels))
        self.classifier = nn.Sequential(*layers)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self.token_weight:
            nn.init.ones_(module.weight)  # a plain mean to start with

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **unused,  # token_type_ids of a BERT batch: these students have none
    ) -> SequenceClassifierOutput:
        if output_hidden_states or output_attentions:
            raise ValueError(
                f"a {self.config.student_kind} student has no hidden states or attentions to "
                "match; use logits KD only (distill.matches: [])."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.to(self.embeddings.weight.dtype)
        x = self.embeddings(input_ids)
        if self.encoder is None:
            weights = self.token_weight(input_ids) if self.token_weight is not None else None
            pooled = _static(x, mask, weights)
        else:
            pooled = self.encoder(x, mask)
        logits = self.classifier(pooled)
        loss = None
        if labels is not None:  # the Trainer's own loss when no KD wraps the model
            loss = nn.functional.cross_entropy(logits, labels, ignore_index=-100)
        return SequenceClassifierOutput(loss=loss, logits=logits)

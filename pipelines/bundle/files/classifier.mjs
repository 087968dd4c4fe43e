// The bundle's model in JavaScript: tokenizer.json through @huggingface/tokenizers (the tokenizer
// library Transformers.js 4 is built on), the ONNX graph through onnxruntime (-node in predict.mjs,
// -web in index.html), and the same batching, padding and outputs as predict.py.
//
// Shared by predict.mjs (Node) and index.html (the browser): the runtime's `ort` and the
// tokenizer library are passed in, so this file imports nothing and runs in both.
// Copied into each bundle from distillery's pipelines/bundle/files/, where it is tested against
// predict.py (`distillery bundle --verify DIR --runtime node|browser`).

export const MODEL_INPUTS = ["input_ids", "attention_mask", "token_type_ids"];
// What this runner answers; token_classification needs each piece's word index (predict.py reads
// `Encoding.word_ids`), which tokenizers.js does not expose: predict.py answers those bundles.
export const TASK_TYPES = ["single_label", "multi_label", "regression"];

export class InputError extends Error {}

/** HF tokenizers' `longest_first` truncation of one text or a pair to `limit` tokens (specials
 * excluded), as the Rust crate does it (tokenizers/src/utils/truncation.rs): a single text keeps
 * its first `limit` pieces; a pair trims the longer one first, and both to half when needed.
 * By hand because tokenizers.js has no truncation and Transformers.js' own cuts the end of the
 * whole sequence, [SEP] included, which is not what the model was trained on. */
export function truncate(first, second, limit) {
  if (second === null) return [first.slice(0, Math.max(limit, 0)), null];
  if (first.length + second.length <= limit) return [first, second];
  let n1 = first.length;
  let n2 = second.length;
  const swap = n1 > n2;
  if (swap) [n1, n2] = [n2, n1];
  n2 = n1 > limit ? n1 : Math.max(n1, limit - n1);
  if (n1 + n2 > limit) {
    n1 = Math.floor(limit / 2);
    n2 = n1 + (limit % 2);
  }
  if (swap) [n1, n2] = [n2, n1];
  return [first.slice(0, n1), second.slice(0, n2)];
}

export class Classifier {
  /**
   * @param {object} ort onnxruntime-node or onnxruntime-web
   * @param {Function} Tokenizer @huggingface/tokenizers' Tokenizer class
   * @param {object} files {config, tokenizer (parsed tokenizer.json), model (path or bytes)}
   * @param {object} options {threads, task}
   */
  static async create(ort, Tokenizer, files, { threads = 0, task = null } = {}) {
    let config = files.config;
    const tasks = Object.fromEntries((config.tasks || []).map((t) => [t.name, t]));
    if (task !== null) {
      if (!(task in tasks)) {
        const known = Object.keys(tasks).join(", ") || "none: this bundle has one task";
        throw new InputError(`--task '${task}': unknown task; this bundle's tasks: ${known}`);
      }
      config = { ...config, ...tasks[task] };
    }
    const kind = config.task_type || "single_label";
    const engine = config.engine || "onnxruntime";
    if (engine !== "onnxruntime") {
      throw new InputError(
        `distillery.json engine '${engine}': this runner runs ONNX models only; run predict.py ` +
          "(an OpenVINO IR has no JavaScript runtime)",
      );
    }
    if (!TASK_TYPES.includes(kind)) {
      throw new InputError(
        `task_type '${kind}': this runner answers ${TASK_TYPES.join(", ")}; ` +
          "token classification needs per-word alignment (word_ids), which tokenizers.js " +
          "does not give: run predict.py",
      );
    }
    const options = { executionProviders: ["cpu"], graphOptimizationLevel: "all" };
    if (threads) options.intraOpNumThreads = threads; // 0: ONNX Runtime's default
    const session = await ort.InferenceSession.create(files.model, options);
    return new Classifier(ort, new Tokenizer(files.tokenizer, {}), session, config);
  }

  constructor(ort, tokenizer, session, config) {
    this.ort = ort;
    this.tokenizer = tokenizer;
    this.session = session;
    this.config = config;
    this.labels = config.labels;
    this.textColumns = config.text_columns;
    this.kind = config.task_type || "single_label";
    const wanted = config.output_name || "logits";
    this.output = session.outputNames.includes(wanted) ? wanted : session.outputNames[0];
    const unknown = session.inputNames.filter((n) => !MODEL_INPUTS.includes(n));
    if (unknown.length) {
      throw new InputError(
        `the model declares inputs ${unknown}; this runner feeds ${MODEL_INPUTS.join(", ")}`,
      );
    }
    const meta = session.inputMetadata || [];
    this.inputTypes = Object.fromEntries(
      session.inputNames.map((name, i) => [name, meta[i]?.type === "int32" ? "int32" : "int64"]),
    );
    const specials = tokenizer.post_processor;
    this.added = [1, 2].map((n) =>
      specials ? specials([], n === 2 ? [] : null, true).tokens.length : 0,
    );
  }

  /** {ids, typeIds} of one row: one text, or a sentence pair. Uses tokenizers.js' encode_text
   * and post_processor (its own encode has no truncation; see `truncate`). */
  encode(texts) {
    const tok = this.tokenizer;
    const pair = texts.length > 1;
    const limit = Number(this.config.max_length) - this.added[pair ? 1 : 0];
    const [a, b] = truncate(tok.encode_text(texts[0]), pair ? tok.encode_text(texts[1]) : null, limit);
    const done = tok.post_processor ? tok.post_processor(a, b, true) : { tokens: [...a, ...(b || [])] };
    // the token → id lookup of tokenizers.js' own encode: added tokens first, then the vocabulary
    const ids = done.tokens.map(
      (t) => tok.added_tokens_map.get(t)?.id ?? tok.model.tokens_to_ids.get(t) ?? tok.model.unk_token_id,
    );
    const typeIds = done.token_type_ids || ids.map(() => 0);
    return { ids, typeIds };
  }

  /** Logits per row (arrays of numbers), in the order of `rows`; "length" batches rows of similar
   * token length together (a stable sort, as predict.py's), "input" keeps consecutive rows. */
  async logits(rows, batchSize, order = "length") {
    const encodings = rows.map((r) => this.encode(r));
    const indices = rows.map((_, i) => i);
    if (order === "length") indices.sort((i, j) => encodings[i].ids.length - encodings[j].ids.length);
    const out = new Array(rows.length);
    for (let start = 0; start < indices.length; start += batchSize) {
      const chosen = indices.slice(start, start + batchSize);
      const result = await this.session.run(this.padded(chosen.map((i) => encodings[i])), [this.output]);
      const tensor = result[this.output];
      const width = tensor.dims[tensor.dims.length - 1];
      chosen.forEach((row, k) => {
        out[row] = Array.from(tensor.data.subarray(k * width, (k + 1) * width));
      });
    }
    return out;
  }

  /** Right-padded integer tensors with the true attention mask (as predict.py's `_padded`). */
  padded(encodings) {
    const width = Math.max(...encodings.map((e) => e.ids.length));
    const pad = Number(this.config.pad_token_id);
    const feed = {};
    for (const [name, type] of Object.entries(this.inputTypes)) {
      const Array_ = type === "int32" ? Int32Array : BigInt64Array;
      const cast = type === "int32" ? Number : BigInt;
      const data = new Array_(encodings.length * width).fill(cast(name === "input_ids" ? pad : 0));
      encodings.forEach((e, row) => {
        const values = name === "input_ids" ? e.ids : name === "token_type_ids" ? e.typeIds : null;
        for (let j = 0; j < e.ids.length; j++) data[row * width + j] = cast(values ? values[j] : 1);
      });
      feed[name] = new this.ort.Tensor(type, data, [encodings.length, width]);
    }
    return feed;
  }

  /** predict.py --probabilities' answers: {label, score, probabilities} (multi_label {labels,
   * probabilities}; regression {value}), rounded to 6 decimals, labels in distillery.json's order. */
  async predict(rows, batchSize = 32, order = "length") {
    const logits = await this.logits(rows, batchSize, order);
    return logits.map((row) => this.answer(row));
  }

  answer(row) {
    const round = (p) => Math.round(p * 1e6) / 1e6;
    if (this.kind === "regression") return { value: round(row[0]) };
    if (this.kind === "multi_label") {
      return {
        labels: this.labels.filter((_, j) => row[j] > 0),
        probabilities: Object.fromEntries(this.labels.map((k, j) => [k, round(1 / (1 + Math.exp(-row[j])))])),
      };
    }
    const top = Math.max(...row);
    const exps = row.map((z) => Math.exp(z - top));
    const total = exps.reduce((a, b) => a + b, 0);
    const best = row.indexOf(top);
    return {
      label: this.labels[best],
      score: round(exps[best] / total),
      probabilities: Object.fromEntries(this.labels.map((k, j) => [k, round(exps[j] / total)])),
    };
  }
}

/** Steady-state latency, as predict.py --benchmark measures it: p50 of whole passes over `rows`
 * (batches by length) and of one-sentence calls, after one warm-up pass. */
export async function benchmark(classifier, rows, batchSize, repeats, now) {
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  await classifier.predict(rows, batchSize);
  const passes = [];
  for (let r = 0; r < repeats; r++) {
    const start = now();
    await classifier.predict(rows, batchSize);
    passes.push(now() - start);
  }
  const single = [];
  for (let r = 0; r < repeats; r++) {
    for (const row of rows.slice(0, 32)) {
      const start = now();
      await classifier.predict([row], 1);
      single.push(now() - start);
    }
  }
  return {
    sentences: rows.length,
    batch_size: batchSize,
    repeats,
    batch_p50_ms: median(passes),
    per_sentence_p50_ms: median(passes) / rows.length,
    single_p50_ms: median(single),
  };
}

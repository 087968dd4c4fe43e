#!/usr/bin/env node
// Classify sentences with the model in this folder, in Node: predict.py's inputs and outputs.
//
//     npm ci --ignore-scripts        # onnxruntime-node's CPU binaries ship in its npm package
//     echo "a gripping, beautifully acted film" | node predict.mjs
//     node predict.mjs --input sentences.txt --threads 2 > predictions.jsonl
//
// Input, one row per line (blank lines skipped): plain text, or a JSON object holding the text
// column(s) named in distillery.json (`text_columns`), or a JSON string. Output, one JSON line per
// row, in input order, as predict.py writes it:
//     {"line": 3, "label": "positive", "score": 0.98}
// (--probabilities adds every label's: "probabilities": {"negative": 0.02, "positive": 0.98})
// (multi_label: "labels" and "probabilities"; regression: "value"). A line that cannot be read
// gets {"line": N, "error": "..."} and exit status 1 at the end (`--on-error stop`: exit 2 there).
// Options as predict.py's: --input --format --threads --batch-size --order --window --benchmark
// --timings --task --on-error. Token classification and OpenVINO bundles: use predict.py (the
// model card says why).
//
// Copied into each bundle from distillery's pipelines/bundle/files/, where
// `distillery bundle --verify DIR --runtime node` checks it against predict.py.

import { existsSync, readFileSync, createReadStream } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const started = Date.now() / 1000; // after imports of node: builtins; the caller subtracts spawn
const HERE = dirname(fileURLToPath(import.meta.url));

function options(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      input: { type: "string" },
      format: { type: "string", default: "auto" },
      threads: { type: "string", default: "0" },
      "batch-size": { type: "string" },
      order: { type: "string", default: "length" },
      window: { type: "string", default: "4096" },
      benchmark: { type: "string" },
      timings: { type: "boolean", default: false },
      task: { type: "string" },
      "on-error": { type: "string", default: "skip" },
      probabilities: { type: "boolean", default: false },
    },
  });
  const choices = { format: ["auto", "text", "jsonl"], order: ["length", "input"], "on-error": ["skip", "stop"] };
  for (const [name, allowed] of Object.entries(choices)) {
    if (!allowed.includes(values[name])) throw new Error(`--${name} must be one of ${allowed.join(", ")}`);
  }
  for (const [name, least] of [["threads", 0], ["batch-size", 1], ["window", 1], ["benchmark", 1]]) {
    if (values[name] === undefined) continue;
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < least) throw new Error(`--${name} must be an integer ≥ ${least}`);
    values[name] = n;
  }
  return values;
}

/** A float that prints as Python's repr writes it (1.0, 0.25, 5e-05). */
class Float {
  constructor(x) {
    this.x = x;
  }

  toString() {
    const x = this.x;
    const abs = Math.abs(x);
    if (!Number.isFinite(x)) return JSON.stringify(x);
    if (x !== 0 && (abs < 1e-4 || abs >= 1e16)) {
      return x.toExponential().replace(/e([+-])(\d)$/, "e$10$2");
    }
    return Number.isInteger(x) ? x.toFixed(1) : String(x);
  }
}

/** Python's json.dumps(ensure_ascii=False): ", " and ": " separators, floats as repr. */
export function pyjson(value) {
  if (value instanceof Float) return value.toString();
  if (Array.isArray(value)) return `[${value.map(pyjson).join(", ")}]`;
  if (value !== null && typeof value === "object") {
    const items = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${pyjson(v)}`);
    return `{${items.join(", ")}}`;
  }
  return JSON.stringify(value);
}

/** One answer line, with predict.py's floats (probabilities, value) printed as floats. */
function dumps(answer, withProbabilities = false) {
  const out = { ...answer };
  if ("score" in out && !withProbabilities) delete out.probabilities; // single-label: as predict.py
  if ("score" in out) out.score = new Float(out.score);
  if ("value" in out) out.value = new Float(out.value);
  if (out.probabilities) {
    const probabilities = Object.entries(out.probabilities).map(([k, p]) => [k, new Float(p)]);
    out.probabilities = Object.fromEntries(probabilities);
  }
  return pyjson(out);
}

/** Lines of a stream as Buffers (UTF-8 is checked per line, as predict.py does). */
async function* lines(stream) {
  let rest = Buffer.alloc(0);
  for await (const chunk of stream) {
    let data = Buffer.concat([rest, chunk]);
    let at;
    while ((at = data.indexOf(10)) >= 0) {
      yield data.subarray(0, at);
      data = data.subarray(at + 1);
    }
    rest = data;
  }
  if (rest.length) yield rest;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Where decoding fails, as Python's UnicodeDecodeError.start: the first byte of the first bad
 * sequence. Streaming decodes leave an unfinished sequence at the end pending rather than
 * failing, so "this prefix decodes" is monotonic and a binary search finds where it stops. */
function invalidAt(raw) {
  let [lo, hi] = [0, raw.length];
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(raw.subarray(0, mid), { stream: true });
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  for (let k = lo - 1; k >= Math.max(0, lo - 3); k--) {
    if ((raw[k] & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const need = raw[k] >= 0xf0 ? 4 : raw[k] >= 0xe0 ? 3 : raw[k] >= 0xc0 ? 2 : 1;
    return k + need > lo ? k : lo; // an unfinished sequence before lo is where it failed
  }
  return lo;
}

/** [line number, texts or an Error] per non-blank line (predict.py's read_rows/parse_row). */
async function* readRows(stream, columns, fmt) {
  let number = 0;
  for await (const raw of lines(stream)) {
    number += 1;
    let line;
    try {
      line = utf8.decode(raw).replace(/\r$/, "");
    } catch {
      const at = invalidAt(raw);
      const byte = raw[at].toString(16).padStart(2, "0");
      yield [number, new Error(`line ${number}: not valid UTF-8 (byte 0x${byte} at column ${at + 1})`)];
      continue;
    }
    if (!line.trim()) continue;
    try {
      yield [number, parseRow(line, number, columns, fmt)];
    } catch (error) {
      yield [number, error];
    }
  }
}

/** A list of names as Python's repr writes it in predict.py's messages: ['text_a', 'text_b']. */
const pylist = (names) => `[${names.map((n) => `'${n}'`).join(", ")}]`;

function parseRow(line, number, columns, fmt) {
  let value = line;
  if (fmt !== "text") {
    try {
      value = JSON.parse(line);
    } catch {
      if (fmt === "jsonl") throw new Error(`line ${number}: not valid JSON; use --format text`);
    }
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const missing = columns.filter((c) => typeof value[c] !== "string");
    if (missing.length) {
      throw new Error(
        `line ${number}: the JSON object has no text under ${pylist(missing)}; ` +
          `expected keys ${pylist(columns)} (distillery.json text_columns)`,
      );
    }
    return columns.map((c) => value[c]);
  }
  if (typeof value === "string" && columns.length === 1) return [value];
  if (fmt === "auto" && columns.length === 1) return [line];
  throw new Error(
    `line ${number}: expected a JSON object with keys ${pylist(columns)} ` +
      (columns.length > 1 ? "(this model reads sentence pairs)" : "or plain text"),
  );
}

async function load(args) {
  const ort = await import("onnxruntime-node");
  const { Tokenizer } = await import("@huggingface/tokenizers");
  const { Classifier } = await import("./classifier.mjs");
  // distillery.json holds the bundle's settings; a bundle built before it kept them in config.json
  const settings = existsSync(join(HERE, "distillery.json")) ? "distillery.json" : "config.json";
  const config = JSON.parse(readFileSync(join(HERE, settings), "utf8"));
  const files = {
    config,
    tokenizer: JSON.parse(readFileSync(join(HERE, "tokenizer.json"), "utf8")),
    model: join(HERE, config.model || "model.onnx"),
  };
  return Classifier.create(ort, Tokenizer, files, { threads: args.threads, task: args.task ?? null });
}

async function main(argv) {
  let args;
  let classifier;
  try {
    args = options(argv);
    classifier = await load(args);
  } catch (error) {
    process.stderr.write(`error: ${error.message}\n`);
    return 2;
  }
  const sessionS = Date.now() / 1000 - started;
  const batchSize = args["batch-size"] || Number(classifier.config.batch_size || 32);
  const window = args.window < batchSize ? args.window : Math.floor(args.window / batchSize) * batchSize;
  const source = args.input ? createReadStream(args.input) : process.stdin;
  const out = [];
  const flush = () => {
    if (out.length) process.stdout.write(out.join(""));
    out.length = 0;
  };
  const rows = readRows(source, classifier.textColumns, args.format);
  if (args.benchmark) {
    const found = [];
    for await (const [, texts] of rows) if (!(texts instanceof Error)) found.push(texts);
    const { benchmark } = await import("./classifier.mjs");
    const result = await benchmark(classifier, found, batchSize, args.benchmark, () => performance.now());
    process.stdout.write(JSON.stringify(result) + "\n");
    return 0;
  }
  let failed = 0;
  let firstS = null;
  let chunk = [];
  const answer = async () => {
    let cut = chunk.findIndex(([, t]) => t instanceof Error);
    if (cut >= 0 && args["on-error"] === "stop") chunk = chunk.slice(0, cut + 1);
    const good = chunk.filter(([, t]) => !(t instanceof Error));
    const results = good.length ? await classifier.predict(good.map(([, t]) => t), batchSize, args.order) : [];
    let k = 0;
    for (const [number, texts] of chunk) {
      if (texts instanceof Error) {
        failed += 1;
        process.stderr.write(`error: ${texts.message}\n`);
        if (args["on-error"] === "stop") return false;
        out.push(pyjson({ line: number, error: texts.message.split(": ").slice(1).join(": ") }) + "\n");
      } else {
        out.push(dumps({ line: number, ...results[k++] }, args.probabilities) + "\n");
      }
    }
    flush();
    if (firstS === null) firstS = Date.now() / 1000 - started - sessionS;
    chunk = [];
    return true;
  };
  for await (const row of rows) {
    chunk.push(row);
    if (chunk.length === window && !(await answer())) return finish(2);
  }
  if (chunk.length && !(await answer())) return finish(2);
  return finish(failed ? 1 : 0);

  function finish(code) {
    flush();
    if (args.timings) {
      const timing = { main_started: started, session_s: sessionS, first_prediction_s: firstS };
      process.stderr.write(JSON.stringify(timing) + "\n");
    }
    if (failed && code === 1) {
      process.stderr.write(`error: ${failed} line(s) could not be read; their output lines say why\n`);
    }
    return code;
  }
}

process.exitCode = await main(process.argv.slice(2));

#!/usr/bin/env node
// Runs two ONNX models on the same random inputs in ONNX Runtime (onnxruntime-node, CPU) and
// reports how far their outputs differ: the check that a graph pass preserved a model's meaning.
//
//   node compare_models.js A.onnx B.onnx [options]
//   node compare_models.js --list PAIRS.txt [options]     (one "A.onnx B.onnx" pair a line,
//                                                          relative to the list's directory)
// options:
//   --seed N          PRNG seed of the inputs (default 1); run k uses seed N + k
//   --runs K          input sets per pair (default 3)
//   --tol T           largest relative difference accepted (default 1e-4)
//   --dims a=2,b=4    sizes of symbolic dimensions (default 1 each)
//   --shape x=1x3x8x8 shape of an input whose shape the model does not declare
//
// Inputs come from A's declared inputs: float types uniform in [-1, 1), integers in [0, 10),
// bool fair coins, from a seeded mulberry32 generator, so a run is reproducible. Per output, the
// relative difference is max |a - b| / max |a| (max |a - b| when A's output is all zeros). Prints
// one JSON object per pair: {"a", "b", "outputs": {name: {"max_abs_diff", "max_abs",
// "rel_diff"}}, "max_rel_diff", "ok"}; exits 1 when any relative difference exceeds the
// tolerance (or an output is missing, differs in shape, or is NaN in one model only), 2 on bad
// arguments. Graph optimizations are disabled so ONNX Runtime runs each graph as written,
// instead of applying its own folding to both.

'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

function usage(message) {
  if (message) console.error(`compare_models: ${message}`);
  console.error('usage: node compare_models.js A.onnx B.onnx | --list PAIRS.txt [--seed N] [--runs K] [--tol T] ' +
                '[--dims name=size,...] [--shape input=AxBxC,...]');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { seed: 1, runs: 3, tol: 1e-4, dims: {}, shapes: {}, models: [], list: null };
  const number = (flag, v, integer) => {
    const x = Number(v);
    if (v === undefined || !Number.isFinite(x) || (integer && !Number.isInteger(x))) usage(`${flag} needs a number, found '${v}'`);
    return x;
  };
  const pairs = (flag, v, parseValue) => {
    if (!v) usage(`${flag} needs name=value pairs`);
    const out = {};
    for (const item of v.split(',')) {
      const eq = item.indexOf('=');
      if (eq <= 0) usage(`${flag}: '${item}' is not name=value`);
      out[item.slice(0, eq)] = parseValue(item.slice(eq + 1), item);
    }
    return out;
  };
  const size = (s, item) => {
    const x = Number(s);
    if (!Number.isInteger(x) || x < 0) usage(`'${item}': a size must be a non-negative integer`);
    return x;
  };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === '--seed') o.seed = number(a, argv[++i], true);
    else if (a === '--runs') o.runs = number(a, argv[++i], true);
    else if (a === '--tol') o.tol = number(a, argv[++i], false);
    else if (a === '--dims') Object.assign(o.dims, pairs(a, argv[++i], size));
    else if (a === '--shape') Object.assign(o.shapes, pairs(a, argv[++i], (s, item) => s.split('x').filter((t) => t !== '').map((t) => size(t, item))));
    else if (a === '--list') o.list = argv[++i] || usage('--list needs a file');
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else o.models.push(a);
  }
  if (o.runs < 1) usage('--runs must be at least 1');
  if (o.list ? o.models.length !== 0 : o.models.length !== 2) usage('give two models, or --list');
  return o;
}

// mulberry32: tiny and seedable; statistical quality is beside the point for test inputs, but the
// same seed must give the same inputs on every machine, which Math.random cannot.
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FLOAT_ARRAYS = { float32: Float32Array, float64: Float64Array };
const INT_ARRAYS = { int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array };

function randomTensor(meta, o, rand) {
  let dims = o.shapes[meta.name];
  if (!dims) {
    if (!meta.shape) throw new Error(`input '${meta.name}' declares no shape; give it with --shape`);
    dims = meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : (typeof d === 'string' && d in o.dims ? o.dims[d] : 1)));
  }
  const count = dims.reduce((x, y) => x * y, 1);
  const type = meta.type;
  if (FLOAT_ARRAYS[type]) {
    const data = new FLOAT_ARRAYS[type](count);
    for (let i = 0; i < count; ++i) data[i] = rand() * 2 - 1;
    return new ort.Tensor(type, data, dims);
  }
  if (INT_ARRAYS[type]) {
    const data = new INT_ARRAYS[type](count);
    for (let i = 0; i < count; ++i) data[i] = Math.floor(rand() * 10);
    return new ort.Tensor(type, data, dims);
  }
  if (type === 'int64' || type === 'uint64') {
    const data = type === 'int64' ? new BigInt64Array(count) : new BigUint64Array(count);
    for (let i = 0; i < count; ++i) data[i] = BigInt(Math.floor(rand() * 10));
    return new ort.Tensor(type, data, dims);
  }
  if (type === 'bool') {
    const data = new Uint8Array(count);
    for (let i = 0; i < count; ++i) data[i] = rand() < 0.5 ? 1 : 0;
    return new ort.Tensor(type, data, dims);
  }
  throw new Error(`input '${meta.name}' has type ${type}, which compare_models cannot generate`);
}

function compareOutput(name, a, b) {
  if (!b) return { error: `output '${name}' is missing from the second model` };
  const da = Array.from(a.dims), db = Array.from(b.dims);
  if (da.length !== db.length || da.some((d, i) => d !== db[i]))
    return { error: `output '${name}' has shape [${da}] in the first model, [${db}] in the second` };
  let maxDiff = 0, maxAbs = 0, nanMismatch = false;
  for (let i = 0; i < a.data.length; ++i) {
    const x = Number(a.data[i]), y = Number(b.data[i]);
    if (Number.isNaN(x) || Number.isNaN(y)) {
      nanMismatch = nanMismatch || Number.isNaN(x) !== Number.isNaN(y);
      continue;
    }
    if (x === y) {  // equal infinities too
      maxAbs = Math.max(maxAbs, Number.isFinite(x) ? Math.abs(x) : 0);
      continue;
    }
    maxDiff = Math.max(maxDiff, Math.abs(x - y));
    maxAbs = Math.max(maxAbs, Math.abs(x));
  }
  if (nanMismatch) return { error: `output '${name}' is NaN in one model only` };
  return { max_abs_diff: maxDiff, max_abs: maxAbs, rel_diff: maxAbs > 0 ? maxDiff / maxAbs : maxDiff };
}

async function comparePair(fileA, fileB, o) {
  // Errors only: ORT warns about initializers a pass left unused, which is not a difference.
  const options = { graphOptimizationLevel: 'disabled', executionProviders: ['cpu'], logSeverityLevel: 3 };
  const sa = await ort.InferenceSession.create(fileA, options);
  const sb = await ort.InferenceSession.create(fileB, options);
  const result = { a: fileA, b: fileB, outputs: {}, max_rel_diff: 0, ok: true };
  try {
    for (let run = 0; run < o.runs; ++run) {
      const rand = mulberry32(o.seed + run);
      const feeds = {};
      for (const meta of sa.inputMetadata) feeds[meta.name] = randomTensor(meta, o, rand);
      // Say which model failed: an original that cannot run on random inputs (an index input out
      // of range, say) is no difference the passes made.
      const runModel = async (s, which) => {
        try {
          return await s.run(feeds);
        } catch (e) {
          throw new Error(`${which} model: ${e.message || e}`);
        }
      };
      const ra = await runModel(sa, 'first');
      const rb = await runModel(sb, 'second');
      for (const name of sa.outputNames) {
        const c = compareOutput(name, ra[name], rb[name]);
        const prev = result.outputs[name];
        if (c.error) {
          result.outputs[name] = { error: c.error };
          result.ok = false;
        } else if (!prev || (!prev.error && c.rel_diff >= prev.rel_diff)) {
          result.outputs[name] = c;
        }
        if (!c.error) result.max_rel_diff = Math.max(result.max_rel_diff, c.rel_diff);
      }
    }
  } finally {
    if (sa.release) await sa.release();
    if (sb.release) await sb.release();
  }
  if (result.max_rel_diff > o.tol) result.ok = false;
  return result;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  let pairs;
  if (o.list) {
    const base = path.dirname(path.resolve(o.list));
    pairs = fs.readFileSync(o.list, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l) => {
      const parts = l.split(/\s+/);
      if (parts.length !== 2) usage(`${o.list}: '${l}' is not a pair of model files`);
      return parts.map((p) => path.resolve(base, p));
    });
    if (pairs.length === 0) usage(`${o.list} lists no pairs`);
  } else {
    pairs = [o.models];
  }
  let failed = 0;
  for (const [a, b] of pairs) {
    let r;
    try {
      r = await comparePair(a, b, o);
    } catch (e) {
      r = { a, b, error: String(e.message || e), ok: false };
    }
    if (!r.ok) ++failed;
    console.log(JSON.stringify(r));
  }
  if (pairs.length > 1) console.error(`compare_models: ${pairs.length - failed} of ${pairs.length} pairs agree within ${o.tol}`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

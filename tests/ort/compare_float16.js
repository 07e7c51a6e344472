#!/usr/bin/env node
// Runs a float32 model and its float16 / bfloat16 conversion on the same random inputs in ONNX
// Runtime (onnxruntime-node, CPU) and reports how close the outputs are: cosine similarity and
// max relative error per output, and elements that are finite in float32 but Inf/NaN converted.
//
//   node compare_float16.js REF.onnx CONVERTED.onnx [options]
//   node compare_float16.js --list PAIRS.txt [options]
// PAIRS.txt: one "REF.onnx CONVERTED.onnx [max_rel=T] [min_cos=C] [expect=nonfinite]" a line,
// paths relative to the list's directory; expect=nonfinite passes when the converted model does
// overflow (the proof that a test model needs automatic blocking).
// options:
//   --seed N        PRNG seed of the inputs (default 1); run k uses seed N + k
//   --runs K        input sets per pair (default 2)
//   --max-rel T     largest max |a - b| / max |a| accepted (default 0.02)
//   --min-cos C     smallest cosine similarity accepted (default 0.9999)
//   --dims a=2,b=4  sizes of symbolic dimensions (default 1)
//   --scale S       inputs uniform in [-S, S) (default 1)
//   --opt LEVEL     ONNX Runtime graph optimization level: disabled, basic, extended, all (default all,
//                   what users run)
//   --load-only     only create both sessions: a pair passes when the converted model loads, or
//                   when the reference does not load either (a sweep over operator test models,
//                   many of which ONNX Runtime refuses for reasons of their own)
//
// Inputs follow REF's declared inputs: floats uniform in [-S, S), integers in [0, 10), bools fair
// coins (mulberry32, so runs are reproducible). A converted model declaring a float16 input gets
// the same values rounded to float16 (round to nearest even, as quench and numpy round); its
// float16 outputs are widened exactly. onnxruntime-node cannot create bfloat16 tensors, so a
// bfloat16 input is an error: convert with keep_io_types for this script. Prints one JSON object
// per pair; exits 1 when a pair fails, 2 on bad arguments.

'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

function usage(message) {
  if (message) console.error(`compare_float16: ${message}`);
  console.error('usage: node compare_float16.js REF.onnx CONVERTED.onnx | --list PAIRS.txt [--seed N] [--runs K] ' +
                '[--max-rel T] [--min-cos C] [--dims name=size,...] [--scale S] [--opt LEVEL]');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { seed: 1, runs: 2, maxRel: 0.02, minCos: 0.9999, dims: {}, scale: 1, opt: 'all', loadOnly: false, models: [], list: null };
  const number = (flag, v) => {
    const x = Number(v);
    if (v === undefined || !Number.isFinite(x)) usage(`${flag} needs a number, found '${v}'`);
    return x;
  };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === '--seed') o.seed = number(a, argv[++i]);
    else if (a === '--runs') o.runs = number(a, argv[++i]);
    else if (a === '--max-rel') o.maxRel = number(a, argv[++i]);
    else if (a === '--min-cos') o.minCos = number(a, argv[++i]);
    else if (a === '--scale') o.scale = number(a, argv[++i]);
    else if (a === '--load-only') o.loadOnly = true;
    else if (a === '--opt') {
      o.opt = argv[++i];
      if (!['disabled', 'basic', 'extended', 'all'].includes(o.opt)) usage(`--opt: unknown level '${o.opt}'`);
    } else if (a === '--dims') {
      for (const item of (argv[++i] || usage('--dims needs name=size pairs')).split(',')) {
        const eq = item.indexOf('=');
        const size = Number(item.slice(eq + 1));
        if (eq <= 0 || !Number.isInteger(size) || size < 0) usage(`--dims: '${item}' is not name=size`);
        o.dims[item.slice(0, eq)] = size;
      }
    } else if (a === '--list') o.list = argv[++i] || usage('--list needs a file');
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else o.models.push(a);
  }
  if (!Number.isInteger(o.runs) || o.runs < 1) usage('--runs must be a positive integer');
  if (o.list ? o.models.length !== 0 : o.models.length !== 2) usage('give two models, or --list');
  return o;
}

// mulberry32: tiny and seedable, so the same seed gives the same inputs on every machine.
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

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

// float -> float16 bits, round to nearest even; |x| >= 65520 -> Inf (IEEE 754 binary16).
function toHalf(x) {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const ax = b & 0x7fffffff;
  if (ax > 0x7f800000) return sign | 0x7e00 | ((ax >>> 13) & 0x3ff);
  if (ax >= 0x477ff000) return sign | 0x7c00;
  if (ax >= 0x38800000) return sign | ((ax - 0x38000000 + 0xfff + ((ax >>> 13) & 1)) >>> 13);
  const e = ax >>> 23;
  if (e < 102) return sign;
  const sig = (ax & 0x7fffff) | 0x800000;
  const shift = 126 - e;
  let q = sig >>> shift;
  const rem = sig - (q << shift);
  const halfway = 1 << (shift - 1);
  if (rem > halfway || (rem === halfway && (q & 1))) ++q;
  return sign | q;
}

function fromHalf(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * Math.pow(2, -24);
  return sign * (1 + m / 1024) * Math.pow(2, e - 15);
}

function randomInputs(meta, o, rand) {
  const values = {};
  for (const m of meta) {
    if (!m.shape) throw new Error(`input '${m.name}' declares no shape`);
    const dims = m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : (typeof d === 'string' && d in o.dims ? o.dims[d] : 1)));
    const count = dims.reduce((x, y) => x * y, 1);
    let data;
    if (m.type === 'float32' || m.type === 'float64') {
      data = new Float64Array(count);
      for (let i = 0; i < count; ++i) data[i] = (rand() * 2 - 1) * o.scale;
    } else if (m.type === 'bool') {
      data = new Uint8Array(count);
      for (let i = 0; i < count; ++i) data[i] = rand() < 0.5 ? 1 : 0;
    } else {
      data = new Float64Array(count);
      for (let i = 0; i < count; ++i) data[i] = Math.floor(rand() * 10);
    }
    values[m.name] = { type: m.type, dims, data };
  }
  return values;
}

// The inputs for a model with metadata `meta`, from the reference model's values.
function feedsFor(meta, values) {
  const feeds = {};
  for (const m of meta) {
    const v = values[m.name];
    if (!v) throw new Error(`input '${m.name}' of the converted model is not an input of the reference model`);
    const n = v.data.length;
    let t;
    if (m.type === 'float32') t = new ort.Tensor('float32', Float32Array.from(v.data), v.dims);
    else if (m.type === 'float64') t = new ort.Tensor('float64', Float64Array.from(v.data), v.dims);
    else if (m.type === 'float16') {
      const d = new Uint16Array(n);
      for (let i = 0; i < n; ++i) d[i] = toHalf(v.data[i]);
      t = new ort.Tensor('float16', d, v.dims);
    } else if (m.type === 'bfloat16') throw new Error(`input '${m.name}' is bfloat16, which onnxruntime-node cannot create (convert with keep_io_types)`);
    else if (m.type === 'bool') t = new ort.Tensor('bool', Uint8Array.from(v.data), v.dims);
    else if (m.type === 'int64') t = new ort.Tensor('int64', BigInt64Array.from(Array.from(v.data, (x) => BigInt(x))), v.dims);
    else if (m.type === 'int32') t = new ort.Tensor('int32', Int32Array.from(v.data), v.dims);
    else throw new Error(`input '${m.name}' has type ${m.type}, which compare_float16 cannot generate`);
    feeds[m.name] = t;
  }
  return feeds;
}

function widen(t) {
  if (t.type === 'float16' && !(t.data instanceof Float32Array)) return Float64Array.from(t.data, fromHalf);
  return Float64Array.from(t.data, Number);
}

function compareOutput(a, b) {
  const x = widen(a), y = widen(b);
  if (x.length !== y.length) return { error: `has ${x.length} elements in the reference, ${y.length} converted` };
  let dot = 0, xx = 0, yy = 0, maxDiff = 0, maxAbs = 0, nonfinite = 0;
  for (let i = 0; i < x.length; ++i) {
    if (!Number.isFinite(x[i])) continue;
    if (!Number.isFinite(y[i])) {
      ++nonfinite;
      continue;
    }
    dot += x[i] * y[i];
    xx += x[i] * x[i];
    yy += y[i] * y[i];
    maxDiff = Math.max(maxDiff, Math.abs(x[i] - y[i]));
    maxAbs = Math.max(maxAbs, Math.abs(x[i]));
  }
  const cosine = nonfinite ? 0 : xx > 0 && yy > 0 ? dot / Math.sqrt(xx * yy) : xx === yy ? 1 : 0;
  return { cosine, max_rel: maxAbs > 0 ? maxDiff / maxAbs : maxDiff, nonfinite, type: b.type };
}

async function comparePair(ref, conv, limits, o) {
  const options = { graphOptimizationLevel: o.opt, executionProviders: ['cpu'], logSeverityLevel: 3 };
  const result = { ref, converted: conv, outputs: {}, cosine: 1, max_rel: 0, nonfinite: 0 };
  let sa, sb;
  try {
    sa = await ort.InferenceSession.create(ref, options);
    try {
      sb = await ort.InferenceSession.create(conv, options);
    } catch (e) {
      throw new Error(`ONNX Runtime cannot load the converted model: ${String(e.message || e).split('\n')[0]}`);
    }
    for (let run = 0; run < o.runs; ++run) {
      const values = randomInputs(sa.inputMetadata, o, mulberry32(o.seed + run));
      const ra = await sa.run(feedsFor(sa.inputMetadata, values));
      const rb = await sb.run(feedsFor(sb.inputMetadata, values));
      for (const name of sa.outputNames) {
        if (!rb[name]) throw new Error(`output '${name}' is missing from the converted model`);
        const c = compareOutput(ra[name], rb[name]);
        if (c.error) throw new Error(`output '${name}' ${c.error}`);
        const prev = result.outputs[name];
        result.outputs[name] = prev
          ? { cosine: Math.min(prev.cosine, c.cosine), max_rel: Math.max(prev.max_rel, c.max_rel),
              nonfinite: Math.max(prev.nonfinite, c.nonfinite), type: c.type }
          : c;
        result.cosine = Math.min(result.cosine, c.cosine);
        result.max_rel = Math.max(result.max_rel, c.max_rel);
        result.nonfinite = Math.max(result.nonfinite, c.nonfinite);
      }
    }
  } finally {
    if (sa && sa.release) await sa.release();
    if (sb && sb.release) await sb.release();
  }
  const within = result.nonfinite === 0 && result.cosine >= limits.minCos && result.max_rel <= limits.maxRel;
  result.expect = limits.expectNonfinite ? 'nonfinite' : 'close';
  result.ok = limits.expectNonfinite ? result.nonfinite > 0 : within;
  return result;
}

async function loadPair(ref, conv) {
  const options = { executionProviders: ['cpu'], logSeverityLevel: 4 };
  const tryLoad = async (file) => {
    try {
      const s = await ort.InferenceSession.create(file, options);
      if (s.release) await s.release();
      return null;
    } catch (e) {
      return String(e.message || e).split('\n')[0];
    }
  };
  const refError = await tryLoad(ref);
  const convError = await tryLoad(conv);
  return { ref, converted: conv, ref_loads: !refError, converted_loads: !convError, error: convError || undefined,
           ok: !convError || !!refError };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  let pairs;
  if (o.list) {
    const base = path.dirname(path.resolve(o.list));
    pairs = fs.readFileSync(o.list, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l) => {
      const parts = l.split(/\s+/);
      if (parts.length < 2) usage(`${o.list}: '${l}' is not "REF CONVERTED [options]"`);
      const limits = { maxRel: o.maxRel, minCos: o.minCos, expectNonfinite: false };
      for (const opt of parts.slice(2)) {
        const [k, v] = opt.split('=');
        if (k === 'max_rel' && Number.isFinite(Number(v))) limits.maxRel = Number(v);
        else if (k === 'min_cos' && Number.isFinite(Number(v))) limits.minCos = Number(v);
        else if (k === 'expect' && v === 'nonfinite') limits.expectNonfinite = true;
        else usage(`${o.list}: unknown pair option '${opt}'`);
      }
      return { ref: path.resolve(base, parts[0]), conv: path.resolve(base, parts[1]), limits };
    });
    if (pairs.length === 0) usage(`${o.list} lists no pairs`);
  } else {
    pairs = [{ ref: o.models[0], conv: o.models[1], limits: { maxRel: o.maxRel, minCos: o.minCos, expectNonfinite: false } }];
  }
  let failed = 0;
  for (const p of pairs) {
    let r;
    try {
      r = o.loadOnly ? await loadPair(p.ref, p.conv) : await comparePair(p.ref, p.conv, p.limits, o);
    } catch (e) {
      r = { ref: p.ref, converted: p.conv, error: String(e.message || e), ok: false };
    }
    if (!r.ok) ++failed;
    // A load sweep prints only what fails; a comparison prints every pair.
    if (!o.loadOnly || !r.ok) console.log(JSON.stringify(r));
  }
  if (pairs.length > 1) console.error(`compare_float16: ${pairs.length - failed} of ${pairs.length} pairs pass`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

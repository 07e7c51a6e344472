#!/usr/bin/env node
// Runs ONNX models in ONNX Runtime (onnxruntime-node, CPU) for quench's reference tests.
//
//   node run_model.js MANIFEST.json
//
// MANIFEST.json: {"cases": [{"name": str, "model": path, "dir": path,
//                            "feeds": [{"name", "dtype", "dims", "file"}]}, ...]}
// (other keys are ignored). Paths are relative to the manifest's directory. Feed files hold the
// raw little-endian elements (float16 as its bit pattern). For each case the outputs are written
// to <dir>/ort_<output name>.bin, and the results of all cases to ort_results.json next to the
// manifest:
//
//   {"onnxruntime": version, "results": {name: {"outputs": [{"name", "dtype", "dims", "file"}]}
//                                           | {"error": message}}}
//
// Graph optimizations are disabled so that every node runs as the kernel the test is about
// (constant folding would run the same kernel, but at session creation). The JS API has no
// float8, bfloat16 or (safely) int4 tensors: models keep those inside the graph.

'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('./node_modules/onnxruntime-node');
const ortVersion = require('./node_modules/onnxruntime-node/package.json').version;

const ARRAYS = {
  float32: Float32Array,
  float16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float64: Float64Array,
  bool: Uint8Array,
};
const READABLE = new Set(Object.keys(ARRAYS).concat(['int64', 'uint64']));

function readFeed(base, feed) {
  const Ctor = ARRAYS[feed.dtype];
  if (!Ctor) throw new Error(`feed '${feed.name}': dtype ${feed.dtype} cannot be fed from JavaScript`);
  const buf = fs.readFileSync(path.join(base, feed.file));
  const count = feed.dims.reduce((a, b) => a * b, 1);
  if (buf.length !== count * Ctor.BYTES_PER_ELEMENT)
    throw new Error(`feed '${feed.name}': expected ${count * Ctor.BYTES_PER_ELEMENT} bytes, found ${buf.length}`);
  // Copy into an aligned buffer: Buffer slices may start at any byte offset.
  const data = new Ctor(count);
  new Uint8Array(data.buffer).set(buf);
  return new ort.Tensor(feed.dtype, data, feed.dims);
}

async function runCase(base, c) {
  const session = await ort.InferenceSession.create(path.join(base, c.model), {
    graphOptimizationLevel: 'disabled',
    executionProviders: ['cpu'],
  });
  const feeds = {};
  for (const f of c.feeds || []) feeds[f.name] = readFeed(base, f);
  for (const meta of session.outputMetadata || []) {
    if (meta.isTensor && meta.type && !READABLE.has(meta.type))
      throw new Error(`output '${meta.name}' has type ${meta.type}, which onnxruntime-node cannot return`);
  }
  const results = await session.run(feeds);
  const outputs = [];
  for (const name of session.outputNames) {
    const t = results[name];
    const file = path.join(c.dir, `ort_${name}.bin`);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    fs.writeFileSync(path.join(base, file), bytes);
    outputs.push({ name, dtype: t.type, dims: Array.from(t.dims), file });
  }
  if (session.release) await session.release();
  return { outputs };
}

async function main() {
  if (process.argv.length !== 3) {
    console.error('usage: node run_model.js MANIFEST.json');
    process.exit(2);
  }
  const manifestPath = path.resolve(process.argv[2]);
  const base = path.dirname(manifestPath);
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  const results = {};
  let failed = 0;
  for (const c of manifest.cases) {
    try {
      results[c.name] = await runCase(base, c);
    } catch (e) {
      results[c.name] = { error: String(e.message || e) };
      ++failed;
    }
  }
  const out = path.join(base, 'ort_results.json');
  fs.writeFileSync(out + '.tmp', JSON.stringify({ onnxruntime: ortVersion, results }, null, 1));
  fs.renameSync(out + '.tmp', out);
  console.log(`onnxruntime-node ${ortVersion}: ran ${manifest.cases.length - failed} of ${manifest.cases.length} models` +
              (failed ? `, ${failed} failed (see ort_results.json)` : ''));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

#!/usr/bin/env node
// Runs one ONNX model in ONNX Runtime (onnxruntime-node, CPU) on .npy inputs and writes its
// outputs as .npy, optionally saving the graph ONNX Runtime optimized (to see which nodes its QDQ
// transformers fused into integer kernels).
//
//   node run_npy.js MODEL.onnx --input NAME=FILE.npy ... [--output-dir DIR]
//                   [--level disabled|basic|extended|all] [--optimized OUT.onnx] [--threads N]
//                   [--time RUNS]
//
// Outputs go to DIR/<output name>.npy (characters other than [A-Za-z0-9_.-] in the name become
// '_'). --time RUNS runs the model RUNS more times after a warm-up and prints {"seconds": best}
// on stdout. Default level: all (as a deployment would run it). Little-endian C-order .npy of
// float32, float64, int8, uint8, int32 and int64 only.

'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

const TYPES = {
  '<f4': ['float32', Float32Array], '<f8': ['float64', Float64Array], '|i1': ['int8', Int8Array],
  '|u1': ['uint8', Uint8Array], '<i4': ['int32', Int32Array], '<i8': ['int64', BigInt64Array],
};

function fail(message, code = 2) {
  console.error(`run_npy: ${message}`);
  process.exit(code);
}

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') fail(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) fail(`${file}: unreadable header ${header}`);
  if (fortran[1] === 'True') fail(`${file}: Fortran order is not supported`);
  const type = TYPES[descr[1]];
  if (!type) fail(`${file}: dtype ${descr[1]} is not supported`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const offset = start + headerLen;
  const bytes = buf.subarray(offset);
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new ort.Tensor(type[0], new type[1](copy.buffer), dims);
}

function writeNpy(file, tensor) {
  const entry = Object.entries(TYPES).find(([, t]) => t[0] === tensor.type);
  if (!entry) fail(`output type ${tensor.type} cannot be written as .npy`);
  const shape = tensor.dims.length === 1 ? `(${tensor.dims[0]},)` : `(${tensor.dims.join(', ')})`;
  let header = `{'descr': '${entry[0]}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(head, 0);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const data = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), data]));
}

async function main() {
  const argv = process.argv.slice(2);
  const o = { model: null, inputs: {}, outDir: null, level: 'all', optimized: null, threads: 1, time: 0 };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === '--input') {
      const v = argv[++i] || '';
      const eq = v.indexOf('=');
      if (eq <= 0) fail(`--input needs NAME=FILE.npy, found '${v}'`);
      o.inputs[v.slice(0, eq)] = v.slice(eq + 1);
    } else if (a === '--output-dir') o.outDir = argv[++i];
    else if (a === '--level') o.level = argv[++i];
    else if (a === '--optimized') o.optimized = argv[++i];
    else if (a === '--threads') o.threads = Number(argv[++i]);
    else if (a === '--time') o.time = Number(argv[++i]);
    else if (a.startsWith('--')) fail(`unknown option ${a}`);
    else if (o.model) fail('give one model');
    else o.model = a;
  }
  if (!o.model) fail('usage: node run_npy.js MODEL.onnx --input NAME=FILE.npy ... [--output-dir DIR] [--optimized OUT.onnx]');
  const options = { graphOptimizationLevel: o.level, intraOpNumThreads: o.threads, interOpNumThreads: 1, executionMode: 'sequential' };
  if (o.optimized) options.optimizedModelFilePath = path.resolve(o.optimized);
  let session;
  try {
    session = await ort.InferenceSession.create(o.model, options);
  } catch (e) {
    fail(`ONNX Runtime cannot load ${o.model}: ${e.message}`, 1);
  }
  const feeds = {};
  for (const [name, file] of Object.entries(o.inputs)) feeds[name] = readNpy(file);
  let results;
  try {
    results = await session.run(feeds);
  } catch (e) {
    fail(`ONNX Runtime cannot run ${o.model}: ${e.message}`, 1);
  }
  if (o.outDir) {
    fs.mkdirSync(o.outDir, { recursive: true });
    for (const name of session.outputNames) writeNpy(path.join(o.outDir, name.replace(/[^A-Za-z0-9_.-]/g, '_') + '.npy'), results[name]);
  }
  if (o.time > 0) {
    let best = Infinity;
    for (let r = 0; r < o.time; ++r) {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    console.log(JSON.stringify({ seconds: best }));
  }
}

main();

#!/usr/bin/env node
// openWakeWord's feature pipeline in ONNX Runtime (onnxruntime-node, CPU), as openWakeWord's
// utils.py runs it offline on a clip (AudioFeatures._get_embeddings):
//   int16 PCM as float32 -> melspectrogram.onnx on the whole clip (batch 1: the model's top-dB
//   clamp, max - 80 dB, spans its whole input, so one clip per run) -> mel / 10 + 2 ->
//   windows of 76 frames every 8 frames -> embedding_model.onnx -> 96-d embeddings ->
//   each head on every 16 consecutive embeddings -> clip score = max over those windows.
//
//   node pipeline.js windows --models DIR --clips DIR --split calib --out calib.npy [--max N]
//       the embedding model's inputs [N, 76, 32, 1] of every window of the split's clips
//       (evenly thinned to at most N windows), for calibration
//   node pipeline.js eval --models DIR --clips DIR --split test --out-dir DIR
//                    --embedding NAME=MODEL.onnx ... [--heads hey_jarvis,alexa,hey_mycroft]
//       per embedding model NAME: OUT/NAME.emb.npy (every window's embedding, clips
//       concatenated in clips.json order) and OUT/NAME.json ({clip: {head: [score per head
//       window]}, "_offsets": {clip: [first, count]}, "_seconds": embedding-model run time})
//
// The mel spectrogram and the heads always run in FP32; only the embedding model changes.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', '..', 'tests', 'ort', 'node_modules',
                              'onnxruntime-node'));

const HEAD_FILES = { hey_jarvis: 'hey_jarvis_v0.1.onnx', alexa: 'alexa_v0.1.onnx',
                     hey_mycroft: 'hey_mycroft_v0.1.onnx' };
const WINDOW = 76, STEP = 8, MEL_BINS = 32, HEAD_WINDOW = 16, EMB = 96;

function fail(message) {
  console.error(`pipeline: ${message}`);
  process.exit(2);
}

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') fail(`${file}: not a .npy file`);
  const major = buf[6];
  const len = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + len);
  if (!/'descr':\s*'<i2'/.test(header)) fail(`${file}: expected int16 PCM, found ${header}`);
  const bytes = buf.subarray(start + len);
  const out = new Float32Array(bytes.length / 2);
  for (let i = 0; i < out.length; ++i) out[i] = bytes.readInt16LE(2 * i);
  return out;
}

function writeNpy(file, data, dims) {
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(head, 0);
  head[6] = 1; head[7] = 0; head.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'),
                                        Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

function parse(argv) {
  const args = { mode: argv[0], embedding: [], heads: Object.keys(HEAD_FILES) };
  for (let i = 1; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-/g, '_'), value = argv[i + 1];
    if (value === undefined) fail(`${argv[i]} needs a value`);
    if (key === 'embedding') args.embedding.push(value);
    else if (key === 'heads') args.heads = value.split(',');
    else args[key] = value;
  }
  for (const k of ['models', 'clips', 'split']) if (!args[k]) fail(`--${k} is required`);
  return args;
}

const session = (file) => ort.InferenceSession.create(file, { intraOpNumThreads: 1,
                                                               interOpNumThreads: 1 });

// The clip's mel frames after openWakeWord's transform, as [frames][32] rows of one array.
async function melspec(mel, pcm) {
  const out = await mel.run({ [mel.inputNames[0]]: new ort.Tensor('float32', pcm, [1, pcm.length]) });
  const t = out[mel.outputNames[0]];
  const frames = t.dims[0] * t.dims[2];   // [time, 1, frames, 32] with time = batch 1
  const data = new Float32Array(t.data.length);
  for (let i = 0; i < data.length; ++i) data[i] = t.data[i] / 10 + 2;
  return { data, frames };
}

// Windows of 76 frames every 8 frames (openWakeWord drops a last short window).
function windows(spec) {
  const starts = [];
  for (let i = 0; i + WINDOW <= spec.frames; i += STEP) starts.push(i);
  const x = new Float32Array(starts.length * WINDOW * MEL_BINS);
  starts.forEach((s, k) => x.set(spec.data.subarray(s * MEL_BINS, (s + WINDOW) * MEL_BINS),
                                 k * WINDOW * MEL_BINS));
  return { x, n: starts.length };
}

async function main() {
  const args = parse(process.argv.slice(2));
  const clips = JSON.parse(fs.readFileSync(path.join(args.clips, 'clips.json'), 'utf8'))
    .filter((c) => c.split === args.split);
  if (clips.length === 0) fail(`no clip in split ${args.split}`);
  const mel = await session(path.join(args.models, 'melspectrogram.onnx'));
  const specs = [];
  for (const c of clips) {
    specs.push(windows(await melspec(mel, readNpy(path.join(args.clips, c.name + '.npy')))));
  }

  if (args.mode === 'windows') {
    if (!args.out) fail('--out is required');
    const total = specs.reduce((a, s) => a + s.n, 0);
    const max = args.max ? Number(args.max) : total;
    const keep = Math.min(max, total);
    const size = WINDOW * MEL_BINS;
    const x = new Float32Array(keep * size);
    // evenly spaced over all windows, so every clip contributes
    let k = 0, seen = 0;
    for (const s of specs) {
      for (let j = 0; j < s.n; ++j, ++seen) {
        if (k < keep && Math.floor(k * total / keep) === seen) {
          x.set(s.x.subarray(j * size, (j + 1) * size), k * size); ++k;
        }
      }
    }
    writeNpy(args.out, x, [keep, WINDOW, MEL_BINS, 1]);
    console.log(JSON.stringify({ clips: clips.length, windows: total, written: keep }));
    return;
  }
  if (args.mode !== 'eval') fail(`mode must be windows or eval, found ${args.mode}`);
  if (!args.out_dir || args.embedding.length === 0) fail('--out-dir and --embedding are required');
  fs.mkdirSync(args.out_dir, { recursive: true });
  const heads = {};
  for (const h of args.heads) {
    if (!HEAD_FILES[h]) fail(`unknown head ${h}`);
    heads[h] = await session(path.join(args.models, HEAD_FILES[h]));
  }
  for (const spec of args.embedding) {
    const eq = spec.indexOf('=');
    if (eq <= 0) fail(`--embedding expects NAME=MODEL.onnx, found ${spec}`);
    const name = spec.slice(0, eq), emb = await session(spec.slice(eq + 1));
    const total = specs.reduce((a, s) => a + s.n, 0);
    const all = new Float32Array(total * EMB);
    const result = { _offsets: {}, _seconds: 0 };
    let row = 0;
    for (let c = 0; c < clips.length; ++c) {
      const s = specs[c];
      const t0 = process.hrtime.bigint();
      const out = await emb.run({ [emb.inputNames[0]]: new ort.Tensor('float32', s.x,
                                                                       [s.n, WINDOW, MEL_BINS, 1]) });
      result._seconds += Number(process.hrtime.bigint() - t0) * 1e-9;
      const e = out[emb.outputNames[0]].data;
      if (e.length !== s.n * EMB) fail(`${name}: embedding output has ${e.length} values, expected ${s.n * EMB}`);
      all.set(e, row * EMB);
      result._offsets[clips[c].name] = [row, s.n];
      const scores = {};
      for (const [h, head] of Object.entries(heads)) {
        scores[h] = [];
        for (let j = 0; j + HEAD_WINDOW <= s.n; ++j) {
          const x = e.slice(j * EMB, (j + HEAD_WINDOW) * EMB);
          const r = await head.run({ [head.inputNames[0]]: new ort.Tensor('float32', x, [1, HEAD_WINDOW, EMB]) });
          scores[h].push(r[head.outputNames[0]].data[0]);
        }
      }
      result[clips[c].name] = scores;
      row += s.n;
    }
    writeNpy(path.join(args.out_dir, `${name}.emb.npy`), all, [total, EMB]);
    fs.writeFileSync(path.join(args.out_dir, `${name}.json`), JSON.stringify(result));
    console.log(JSON.stringify({ embedding: name, clips: clips.length, windows: total,
                                 seconds: result._seconds }));
  }
}

main().catch((e) => fail(e.stack || String(e)));

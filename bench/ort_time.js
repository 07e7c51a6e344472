#!/usr/bin/env node
// Times ONNX Runtime (onnxruntime-node, CPU, one intra-op thread) on one model and input, for
// bench/executor_bench.cpp, which runs quench on the same model and input in the same run.
//
//   node ort_time.js MODEL.onnx INPUT_NAME INPUT.bin D0,D1,... RUNS
//
// Prints one JSON line: {"seconds_per_run": s, "peak_rss_delta_bytes": b} where the RSS delta is
// the peak resident size after the runs minus the resident size before the session existed.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', 'tests', 'ort', 'node_modules', 'onnxruntime-node'));

async function main() {
  const [model, inputName, inputFile, dimsText, runsText] = process.argv.slice(2);
  const dims = dimsText.split(',').map(Number);
  const runs = Number(runsText);
  const buf = fs.readFileSync(inputFile);
  const data = new Float32Array(buf.length / 4);
  new Uint8Array(data.buffer).set(buf);
  const before = process.memoryUsage().rss;
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const feeds = { [inputName]: new ort.Tensor('float32', data, dims) };
  await session.run(feeds);  // warm-up, as the quench side does
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < runs; ++i) await session.run(feeds);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9 / runs;
  const peak = process.resourceUsage().maxRSS * 1024;
  console.log(JSON.stringify({ seconds_per_run: seconds, peak_rss_delta_bytes: peak - before }));
}
main().catch((e) => { console.error(e); process.exit(1); });

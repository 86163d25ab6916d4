// Times an ONNX classifier in ONNX Runtime (CPU): images/s at one batch size, for tests/bench/onnx_speed.py.
//
// node bench.mjs MODEL.onnx C H W BATCH SECONDS THREADS
// Random uint8 images [BATCH, C, H, W]; 5 warm-up runs, then session.run() back to back for
// SECONDS. Prints one JSON line: {"onnxruntime", "batch", "runs", "seconds", "images_per_second", "ms_per_batch"}.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');

const [model, ...rest] = process.argv.slice(2);
const [c, h, w, batch, seconds, threads] = rest.map(Number);
if (!model || ![c, h, w, batch, threads].every((n) => Number.isInteger(n) && n > 0) || !(seconds > 0)) {
  process.stderr.write('usage: node bench.mjs MODEL.onnx C H W BATCH SECONDS THREADS\n');
  process.exit(1);
}
const session = await ort.InferenceSession.create(model, {
  graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1,
});
const pixels = new Uint8Array(batch * c * h * w).map(() => Math.floor(Math.random() * 256));
const feeds = { [session.inputNames[0]]: new ort.Tensor('uint8', pixels, [batch, c, h, w]) };
for (let i = 0; i < 5; ++i) await session.run(feeds);
let runs = 0;
const start = process.hrtime.bigint();
let elapsed = 0;
while (elapsed < seconds) {
  await session.run(feeds);
  ++runs;
  elapsed = Number(process.hrtime.bigint() - start) / 1e9;
}
process.stdout.write(`${JSON.stringify({
  onnxruntime: ort.env.versions.node ?? ort.env.versions.common, batch, runs, seconds: elapsed,
  images_per_second: (runs * batch) / elapsed, ms_per_batch: (1000 * elapsed) / runs,
})}\n`);

// Runs an ONNX classifier in ONNX Runtime (CPU) on raw uint8 images: maas-export's second implementation.
//
// node run.mjs MODEL.onnx IMAGES LOGITS C H W BATCH [BATCH ...]
//   IMAGES  uint8 pixels [sum(BATCH), C, H, W], the batches one after another
//   LOGITS  written: float32 little-endian logits [sum(BATCH), classes], in the same order
// Each BATCH is one session.run() with the model's input "images" as [BATCH, C, H, W] (the
// dynamic batch dimension is exercised by passing several sizes). Prints one JSON line,
// {"onnxruntime": VERSION, "classes": K}; on any error one line on stderr and exit 1.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function fail(message) {
  process.stderr.write(`onnxrt/run.mjs: ${message}\n`);
  process.exit(1);
}

async function main(argv) {
  if (argv.length < 7) fail('usage: node run.mjs MODEL.onnx IMAGES LOGITS C H W BATCH [BATCH ...]');
  const [model, imagesPath, logitsPath, ...numbers] = argv;
  const sizes = numbers.map((text) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) fail(`not a positive integer: '${text}'`);
    return n;
  });
  const [c, h, w, ...batches] = sizes;
  const perImage = c * h * w;
  const images = readFileSync(imagesPath);
  const total = batches.reduce((a, b) => a + b, 0);
  if (images.length !== total * perImage)
    fail(`${imagesPath} holds ${images.length} bytes, expected ${total} images of ${c}x${h}x${w}`);

  const ort = require('onnxruntime-node');
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'all' });
  const [input] = session.inputNames;
  const [output] = session.outputNames;
  const parts = [];
  let classes = 0;
  let offset = 0;
  for (const batch of batches) {
    const pixels = new Uint8Array(images.buffer, images.byteOffset + offset * perImage, batch * perImage);
    const result = await session.run({ [input]: new ort.Tensor('uint8', pixels, [batch, c, h, w]) });
    const logits = result[output];
    if (logits.type !== 'float32' || logits.dims.length !== 2 || logits.dims[0] !== batch)
      fail(`output '${output}' is ${logits.type} [${logits.dims}], expected float32 [${batch}, classes]`);
    classes = logits.dims[1];
    parts.push(Buffer.from(logits.data.buffer, logits.data.byteOffset, logits.data.byteLength));
    offset += batch;
  }
  writeFileSync(logitsPath, Buffer.concat(parts));
  process.stdout.write(`${JSON.stringify({ onnxruntime: ort.env.versions.node ?? ort.env.versions.common, classes })}\n`);
}

main(process.argv.slice(2)).catch((error) => fail(String(error && error.message ? error.message : error).split('\n')[0]));

// Float accuracy of the shared models through p2calib's own float engine and evaluation code,
// against onnxruntime-node on the same tensors (they must agree) and the ONNX Runtime baselines of
// ../shared/assets/README.md (measured with sharp's own colour-profile conversion, which rounds a
// level differently from sdk/data/icc.ts on some photos). Long (minutes per model): an npm
// script, not a test. Usage: npm run accuracy:float [-- mobilenetv2 yolox deeplab]
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { presetSpec, sizeSpec } from '../dist/sdk/data/preprocess.js';
import { loadModel } from '../dist/sdk/model.js';
import { COCO_PANOPTIC_TO_VOC } from '../dist/sdk/metrics/segmentation.js';
import { openDataset } from '../dist/sdk/node/datasets.js';
import { evaluate } from '../dist/sdk/node/evaluate.js';

const A = resolve('../shared/assets');
if (!existsSync(A)) {
  console.error(`accuracy:float needs the reference assets in ${A}`);
  process.exit(2);
}
const COCO = join(A, 'images/coco128-val');
const RUNS = {
  mobilenetv2: {
    model: 'mobilenetv2-12-fp32.onnx', shape: [1, 3, 224, 224], preset: 'imagenet', task: 'imagenet',
    images: join(A, 'images/imagenet-sample'), labels: join(A, 'labels/imagenet-wnids.txt'), want: { top1: 83.8, top5: 97.0 },
  },
  yolox: {
    model: 'yolox-nano.onnx', shape: [1, 3, 416, 416], preset: 'yolox', task: 'detection',
    images: join(COCO, 'images'), labels: join(COCO, 'detection-labels'), want: { map50: 49.7 },
  },
  deeplab: {
    model: 'deeplabv3-mobilenetv2-257-nhwc.onnx', shape: [1, 257, 257, 3], preset: 'deeplab', task: 'segmentation',
    images: join(COCO, 'images'), labels: join(COCO, 'segmentation-masks'), classMap: COCO_PANOPTIC_TO_VOC, want: { miou: 33.8 },
  },
};

const names = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(RUNS);
let failed = 0;
for (const name of names) {
  const r = RUNS[name];
  if (!r) {
    console.error(`unknown run "${name}" (runs: ${Object.keys(RUNS).join(', ')})`);
    process.exit(2);
  }
  const started = Date.now();
  const bytes = readFileSync(join(A, 'models', r.model));
  const model = await loadModel(bytes, { inputShape: r.shape });
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  // onnxruntime runs in the second slot of the evaluation, on exactly the tensors p2calib gets.
  const runOrt = async (x) => {
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, r.shape) });
    return Object.fromEntries(session.outputNames.map((k) => [k, out[k].data]));
  };
  const res = await evaluate(model, {
    task: r.task, dataset: openDataset(r.images), spec: sizeSpec(presetSpec(r.preset), r.shape), labels: r.labels, classMap: r.classMap,
    fixed: { run: runOrt },
    onProgress: (d, t) => process.stderr.isTTY && process.stderr.write(`\r${name} ${d}/${t}\x1b[K`),
  });
  await session.release();
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const at = (m, k) => Number(m[k].toFixed(1));
  const ok = Object.keys(r.want).every((k) => at(res.float, k) === at(res.fixed, k));
  if (!ok) failed++;
  const figures = Object.keys(r.want).map((k) => `${k} ${at(res.float, k).toFixed(1)} (onnxruntime on the same tensors ${at(res.fixed, k).toFixed(1)}, assets baseline ${r.want[k].toFixed(1)})`);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${res.images} images, ${figures.join(', ')}, ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
process.exitCode = failed ? 1 : 0;

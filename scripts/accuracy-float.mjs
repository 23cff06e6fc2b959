// Float accuracy of the shared models through p2calib's own float engine and evaluation code,
// against the ONNX Runtime baselines of ../shared/assets/README.md. Long (minutes per model):
// an npm script, not a test. Usage: npm run accuracy:float [-- mobilenetv2 yolox deeplab]
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
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
  const model = await loadModel(readFileSync(join(A, 'models', r.model)), { inputShape: r.shape });
  const res = await evaluate(model, {
    task: r.task, dataset: openDataset(r.images), spec: sizeSpec(presetSpec(r.preset), r.shape), labels: r.labels, classMap: r.classMap,
    onProgress: (d, t) => process.stderr.isTTY && process.stderr.write(`\r${name} ${d}/${t}\x1b[K`),
  });
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const got = Object.fromEntries(Object.keys(r.want).map((k) => [k, Number(res.float[k].toFixed(1))]));
  const ok = Object.keys(r.want).every((k) => got[k] === r.want[k]);
  if (!ok) failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${res.images} images, ${Object.keys(r.want).map((k) => `${k} ${got[k].toFixed(1)} (ONNX Runtime ${r.want[k].toFixed(1)})`).join(', ')}, ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
process.exitCode = failed ? 1 : 0;

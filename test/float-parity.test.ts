/**
 * The float engine (WASM kernels, fused activations) against onnxruntime-node on every shared
 * model: max |ours - ORT| <= 1e-4 * max |ORT| for every output, on random images (uniform random
 * pixels through the model's own preprocessing, so inputs lie in its input domain) and on real
 * preprocessed images; the measured figure is printed per model. Then MobileNetV2 top-1 on the 500
 * ImageNet images must equal ONNX Runtime's 83.8 % within 0.2 points.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { labelsFromList, parseClassList } from '../sdk/data/labels.js';
import { normalize, presetSpec, type SizedSpec } from '../sdk/data/preprocess.js';
import { loadModel } from '../sdk/index.js';
import { TopKAccuracy } from '../sdk/metrics/classification.js';
import { loadImageTensor } from '../sdk/node/images.js';
import { ASSETS, MODELS, SHARED_MODELS, assetTest, diff, rng } from './helpers.js';

const TOL = 1e-4;
const IMAGENET = join(ASSETS, 'images/imagenet-sample');
const COCO = join(ASSETS, 'images/coco128-val/images');

const PRESET: Record<string, string> = {
  'mobilenetv2-12-fp32.onnx': 'imagenet',
  'mobilenetv2-12-int8.onnx': 'imagenet',
  'yolox-nano.onnx': 'yolox',
  'deeplabv3-mobilenetv2-257-nhwc.onnx': 'deeplab',
  'ultraface-rfb-320.onnx': 'ultraface',
};

/** Real images for a model: ImageNet photos for classifiers, COCO photos for the others. */
function realImages(file: string): string[] {
  return PRESET[file] === 'imagenet'
    ? [join(IMAGENET, 'n01440764_tench.JPEG'), join(IMAGENET, 'n01494475_hammerhead.JPEG')]
    : [join(COCO, '000000000139.jpg'), join(COCO, '000000000285.jpg')];
}

/** An image of uniform random pixels, preprocessed like a real one. */
function randomImage(spec: SizedSpec, seed: number): Float32Array {
  const r = rng(seed);
  const data = Uint8Array.from({ length: spec.width * spec.height * 3 }, () => Math.floor(r(0, 256)));
  return normalize({ width: spec.width, height: spec.height, data }, spec);
}

for (const { file, shape } of SHARED_MODELS) {
  assetTest(test, `${file}: WASM float engine equals onnxruntime-node within 1e-4 of the output range`, async () => {
    const bytes = readFileSync(join(MODELS, file));
    const model = await loadModel(bytes, { inputShape: shape });
    const { plan } = await model.floatPlan(1);
    const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3, intraOpNumThreads: 1 });
    const spec = presetSpec(PRESET[file]);
    const inputs: [string, Float32Array][] = [
      ['random 1', randomImage(spec, 1)],
      ['random 2', randomImage(spec, 2)],
      ...await Promise.all(realImages(file).map(async (p): Promise<[string, Float32Array]> => [p.split('/').pop()!, await loadImageTensor(p, spec)])),
    ];
    const figures: string[] = [];
    for (const [label, x] of inputs) {
      const ours = plan.run({ [model.inputs[0].name]: x });
      const theirs = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, shape) });
      for (const name of session.outputNames) {
        const d = diff(ours[name], theirs[name].data as Float32Array);
        const rel = d.max / d.ref;
        figures.push(`${label}/${name} ${rel.toExponential(2)}`);
        assert.ok(d.ref > 0 && rel <= TOL, `${file} ${label} output ${name}: max |diff| ${d.max} vs max |ref| ${d.ref}`);
      }
    }
    await session.release();
    console.log(`  ${file}: max|diff|/max|ref| ${figures.join(', ')}`);
  });
}

assetTest(test, 'deterministic: a batch of 8 gives each image the bits of its batch-1 run, and repeated runs the same bits', async () => {
  const model = await loadModel(readFileSync(join(MODELS, 'mobilenetv2-12-fp32.onnx')), { inputShape: [1, 3, 224, 224] });
  const spec = presetSpec('imagenet');
  const per = 3 * 224 * 224;
  const x = new Float32Array(8 * per);
  for (let b = 0; b < 8; b++) x.set(randomImage(spec, 10 + b), b * per);
  const name = model.outputs[0].name;
  const y8 = (await model.run(x))[name];
  for (let b = 0; b < 8; b++) {
    const y1 = (await model.run(x.subarray(b * per, (b + 1) * per)))[name];
    assert.ok(y1.every((v, i) => Object.is(v, y8[b * 1000 + i])), `image ${b} differs between batch 1 and batch 8`);
  }
  assert.ok((await model.run(x))[name].every((v, i) => Object.is(v, y8[i])), 'a second run differs');
});

assetTest(test, 'MobileNetV2 top-1 on the 500 ImageNet images with the WASM engine equals ONNX Runtime (83.8 %) within 0.2 points', async () => {
  const files = readdirSync(IMAGENET).filter((f) => f.endsWith('.JPEG')).sort();
  const labels = labelsFromList(files, parseClassList(readFileSync(join(ASSETS, 'labels/imagenet-wnids.txt'), 'utf8')));
  assert.is(files.length, 500);
  const model = await loadModel(readFileSync(join(MODELS, 'mobilenetv2-12-fp32.onnx')), { inputShape: [1, 3, 224, 224] });
  const spec = presetSpec('imagenet');
  const B = 25, per = 3 * 224 * 224;
  const acc = new TopKAccuracy();
  for (let i = 0; i < files.length; i += B) {
    const batch = files.slice(i, i + B);
    const x = new Float32Array(batch.length * per);
    await Promise.all(batch.map((f, j) => loadImageTensor(join(IMAGENET, f), spec, x, j)));
    const y = (await model.run(x))[model.outputs[0].name];
    batch.forEach((_, j) => acc.add(y.subarray(j * 1000, (j + 1) * 1000), labels[i + j]));
  }
  const r = acc.result();
  console.log(`  MobileNetV2 (WASM engine): top-1 ${r.top1.toFixed(1)} %, top-5 ${r.top5.toFixed(1)} % on ${acc.count} images`);
  assert.ok(Math.abs(r.top1 - 83.8) <= 0.2, `top-1 ${r.top1}`);
});

test.run();

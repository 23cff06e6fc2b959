// The QDQ export run by onnxruntime-node against p2calib's own fixed-point run, on every shared
// float model: they differ where the device and ONNX round differently (ties: half up in the
// device's shifts, half to even in QuantizeLinear), and deep nets amplify those steps. The test
// states the measured figures and holds the QDQ model closer to the fixed-point run than the
// float model is (or within 30 dB of it where quantization costs little), and the QDQ model with
// the device's rounding (toQdqOnnx({ rounding: 'device' })) closer still.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sizeSpec, presetSpec } from '../sdk/data/preprocess.js';
import { calibrate, loadModel, loadImageTensor, type QdqRounding } from '../sdk/index.js';
import { ASSETS, assetTest, readModel } from './helpers.js';

const CASES = [
  { file: 'mobilenetv2-12-fp32.onnx', shape: [1, 3, 224, 224], preset: 'imagenet', images: 'images/imagenet-sample' },
  { file: 'ultraface-rfb-320.onnx', preset: 'ultraface', images: 'images/coco128-val/images' },
  { file: 'deeplabv3-mobilenetv2-257-nhwc.onnx', preset: 'deeplab', images: 'images/coco128-val/images' },
  { file: 'yolox-nano.onnx', preset: 'yolox', images: 'images/coco128-val/images' },
];

function compare(a: ArrayLike<number>, b: ArrayLike<number>): { max: number; sqnr: number } {
  let max = 0, signal = 0, noise = 0;
  for (let i = 0; i < a.length; i++) {
    max = Math.max(max, Math.abs(a[i] - b[i]));
    signal += b[i] * b[i];
    noise += (a[i] - b[i]) ** 2;
  }
  return { max, sqnr: 10 * Math.log10(signal / noise) };
}

for (const c of CASES) {
  assetTest(test, `QDQ export of ${c.file} in onnxruntime follows the fixed-point run`, async () => {
    const model = await loadModel(readModel(c.file), { inputShape: c.shape });
    const spec = sizeSpec(presetSpec(c.preset), model.inputs[0].shape);
    const dir = join(ASSETS, c.images);
    const files = readdirSync(dir).sort().slice(0, 3).map((f) => join(dir, f));
    const [a, b, x] = await Promise.all(files.map((f) => loadImageTensor(f, spec)));
    const cal = await calibrate(model, [a, b], { preset: 'advanced-dw' });
    const feeds = { [model.inputs[0].name]: new ort.Tensor('float32', x, model.inputs[0].shape) };
    const runQdq = async (rounding: QdqRounding) => {
      const session = await ort.InferenceSession.create(cal.toQdqOnnx({ rounding }), { logSeverityLevel: 3 });
      const out = await session.run(feeds);
      await session.release();
      return out;
    };
    const [onnx, device] = [await runQdq('onnx'), await runQdq('device')];
    const [fixed, float] = [await cal.run(x), await model.run(x)];
    for (const o of model.outputs.map((t) => t.name)) {
      const vsOnnx = compare(fixed[o], onnx[o].data as Float32Array);
      const vsDevice = compare(fixed[o], device[o].data as Float32Array);
      const vsFloat = compare(fixed[o], float[o]);
      const step = 2 ** -cal.spec.tensors[o].scaleLog2;
      const figures = (r: { max: number; sqnr: number }) => `max |diff| ${r.max} (${(r.max / step).toFixed(0)} steps), SQNR ${r.sqnr.toFixed(1)} dB`;
      console.log(`  ${c.file} ${o}: fixed vs QDQ ${figures(vsOnnx)}; vs QDQ with device rounding ${figures(vsDevice)}; fixed vs float SQNR ${vsFloat.sqnr.toFixed(1)} dB`);
      // Where quantization costs little, fixed, QDQ and float all agree within 30 dB.
      assert.ok(vsOnnx.sqnr > vsFloat.sqnr || vsOnnx.sqnr >= 30, `${o}: the QDQ model should follow the fixed-point run more closely than float does`);
      assert.ok(vsDevice.sqnr >= vsOnnx.sqnr, `${o}: rounding ties as the device does should bring the QDQ model closer to the fixed-point run`);
      // What remains is average pooling (the device multiplies by a rounded reciprocal) and
      // bilinear resizing: one output step at most on these models (YOLOX, UltraFace: none).
      assert.ok(vsDevice.max <= step, `${o}: QDQ with device rounding is ${vsDevice.max / step} steps from the fixed-point run`);
    }
  });
}

test.run();

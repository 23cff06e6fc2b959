// Where a mixed-precision calibration's time goes (bench/README.md, "Mixed precision's sensitivity
// pass"): advanced-dw with mixedPrecision on the first N images of a folder, 2 workers, printing
// Calibration.timings (ms; `mixedPrecision` is the sensitivity pass, `fixed`/`float`/`sqnr` the
// workers' summed kernel time). Run after `npm run build`.
//   node scripts/sensitivity-time.mjs MODEL.onnx IMAGE_DIR PRESET N FACTOR SHAPE
//   node scripts/sensitivity-time.mjs ../shared/assets/models/yolox-nano.onnx \
//     ../shared/assets/images/coco128-val/images yolox 64 1.5 1,3,416,416
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { presetSpec } from '../dist/sdk/data/preprocess.js';
import { loadModel } from '../dist/sdk/model.js';
import { calibrateImages } from '../dist/sdk/node/calibrate-images.js';

const [file, dir, preset, n, factor, shape] = process.argv.slice(2);
if (!shape) {
  console.error('usage: node scripts/sensitivity-time.mjs MODEL.onnx IMAGE_DIR PRESET N FACTOR SHAPE (e.g. 1,3,224,224)');
  process.exit(2);
}
const model = await loadModel(readFileSync(file), { inputShape: shape.split(',').map(Number) });
const images = readdirSync(dir).sort().slice(0, Number(n)).map((f) => join(dir, f));
const cal = await calibrateImages(model, images, presetSpec(preset), { preset: 'advanced-dw', mixedPrecision: { factor: Number(factor) }, workers: 2 });
console.log(JSON.stringify(cal.timings, (_, v) => (typeof v === 'number' ? Math.round(v) : v)));

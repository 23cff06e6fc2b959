import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Calibration } from '../sdk/calibration.js';
import { presetSpec, type SizedSpec } from '../sdk/data/preprocess.js';
import { P2Error } from '../sdk/errors.js';
import { loadModel, type Model } from '../sdk/model.js';
import { calibrateImages, type ImageCalibrateOptions } from '../sdk/node/calibrate-images.js';
import { saveCalibration } from '../sdk/node/calibration-files.js';
import { ASSETS, MODELS, ROOT, assetTest, rng, smallCnn } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'p2calib-workers-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const CLI = join(ROOT, 'dist/cli/main.js');

// Noise images of different sizes, for the small CNN (12x12 input).
const images = join(dir, 'images');
mkdirSync(images);
const r = rng(3);
for (let i = 0; i < 7; i++) {
  const [w, h] = [14 + 3 * i, 12 + 2 * (i % 3)];
  const px = Buffer.from(Array.from({ length: w * h * 3 }, () => Math.floor(r(0, 256))));
  writeFileSync(join(images, `${i}.png`), await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer());
}
const files = readdirSync(images).sort().map((f) => join(images, f));
const SPEC: SizedSpec = {
  width: 12, height: 12, resize: 'fill', interpolation: 'bilinear', channels: 'RGB', scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], layout: 'NCHW',
};
const smallModel = join(dir, 'small.onnx');
writeFileSync(smallModel, smallCnn());

/** The three files a calibration writes, as saved on disk. */
function saved(cal: Calibration, name: string): Record<string, Buffer> {
  const out = join(dir, name);
  const written = saveCalibration(cal, out, { force: true });
  return Object.fromEntries(Object.entries(written).map(([k, p]) => [k, readFileSync(p)]));
}

/** `reuse`: check that each file is decoded once (mixed precision's measurements add reads of
 *  their own). */
async function sameForWorkerCounts(model: Model, list: string[], spec: SizedSpec, options: ImageCalibrateOptions, tag: string, reuse = true): Promise<Record<string, Buffer>> {
  const results: Record<string, Buffer>[] = [];
  for (const workers of [1, 2, 3]) {
    const cal = await calibrateImages(model, list, spec, { ...options, workers });
    assert.is(cal.timings!.workers, workers);
    assert.is(cal.table.images, list.length);
    // Each file is decoded once: its repeats in pass 1 and every later pass take it from the
    // worker that decoded it.
    const repeats = list.length - new Set(list).size;
    if (reuse) assert.is(cal.timings!.reused, repeats + list.length * (options.iterations ?? 1), `${tag}: images decoded again`);
    results.push(saved(cal, `${tag}-${workers}`));
  }
  for (const k of ['qdq', 'calibrated', 'table']) {
    assert.ok(results[1][k].equals(results[0][k]), `${tag}: ${k} differs between 1 and 2 workers`);
    assert.ok(results[2][k].equals(results[0][k]), `${tag}: ${k} differs between 1 and 3 workers`);
  }
  return results[0];
}

test('1, 2 and 3 workers give byte-identical files (bias updates every 2 images over 2 passes, both bias variants, seeded subsample)', async () => {
  const model = await loadModel(smallCnn());
  const tidl = await sameForWorkerCounts(model, files, SPEC, { preset: 'advanced', batchSize: 2, iterations: 2 }, 'tidl');
  // The same files twice (adjacent and further apart), as the calibration benchmark's 1000 images.
  const twice = [...files.slice(0, 2), files[0], ...files.slice(2), ...files.slice(1, 4)];
  const repeated = await sameForWorkerCounts(model, twice, SPEC, { preset: 'advanced', batchSize: 2, iterations: 2 }, 'repeated');
  assert.is(JSON.parse(repeated.table.toString()).images, twice.length);
  const devkit = await sameForWorkerCounts(model, files, SPEC, {
    preset: 'advanced-dw', batchSize: 3, biasCalibration: 'devkit', pixelInput: true, subsample: true, seed: 5,
  }, 'devkit');
  // The runs did calibrate: biases moved, and the variants differ.
  const table = JSON.parse(tidl.table.toString());
  assert.is(table.images, 7);
  assert.is(JSON.parse(devkit.table.toString()).subsampleSeed, 5);
  assert.not.equal(JSON.parse(devkit.table.toString()).layers, table.layers);
  assert.ok(Object.values(table.tensors).some((t) => typeof (t as { sqnr?: number }).sqnr === 'number'));
});

test('mixed precision: the choice and the files are byte-identical for 1, 2 and 3 workers', async () => {
  const model = await loadModel(smallCnn());
  const out = await sameForWorkerCounts(model, files, SPEC, { preset: 'advanced-dw', mixedPrecision: { factor: 1.6, images: 5 } }, 'mixed', false);
  const mp = JSON.parse(out.table.toString()).mixedPrecision;
  assert.ok(mp.measured > 0 && mp.chosen.length > 0, JSON.stringify(mp));
  assert.ok(mp.cost > 1 && mp.cost <= 1.6, `cost ${mp.cost}`);
});

test('the CLI --workers flag gives the same files as the SDK', async () => {
  const model = await loadModel(smallCnn());
  const sdk = saved(await calibrateImages(model, files, SPEC, { workers: 1 }), 'cli-sdk');
  const flags = ['--size', '12x12', '--resize', 'fill', '--interpolation', 'bilinear', '--scale', '1/255', '--mean', '0.5', '--std', '0.25'];
  const out = join(dir, 'cli-2');
  const res = spawnSync(process.execPath, [CLI, 'calibrate', smallModel, '--images', images, '--out', out, '--workers', '2', '--json', ...flags], { encoding: 'utf8' });
  assert.is(res.status, 0, res.stderr);
  assert.ok(readFileSync(join(out, 'model.qdq.onnx')).equals(sdk.qdq));
  // The same calibration; the CLI's provenance also knows the model's path, the image folder and its flags.
  // The hash covers the provenance, so it differs too.
  const strip = (b: Buffer) => JSON.stringify({ ...JSON.parse(b.toString()), provenance: undefined, integrity: undefined });
  assert.is(strip(readFileSync(join(out, 'calibration.json'))), strip(sdk.table));
  const bad = spawnSync(process.execPath, [CLI, 'calibrate', smallModel, '--images', images, '--out', join(dir, 'cli-bad'), '--workers', '0', ...flags], { encoding: 'utf8' });
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /--workers must be an integer >= 1/);
});

test('a bad image in a worker thread fails a strict calibration with its P2Error, and the threads end', async () => {
  const model = await loadModel(smallCnn());
  const broken = join(dir, 'broken.png');
  writeFileSync(broken, 'not an image');
  for (const workers of [1, 2]) {
    try {
      await calibrateImages(model, [...files.slice(0, 3), broken, ...files.slice(3)], SPEC, { workers, strict: true });
      assert.unreachable();
    } catch (e) {
      assert.instance(e, P2Error);
      assert.is((e as P2Error).code, 'BAD_IMAGE');
      assert.match((e as Error).message, /broken\.png/);
    }
  }
  try {
    await calibrateImages(model, files, SPEC, { workers: 1.5 });
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /workers must be a positive integer/);
  }
});

assetTest(test, 'MobileNetV2 on 6 real images: 1, 2 and 3 workers write byte-identical files', async () => {
  const model = await loadModel(readFileSync(join(MODELS, 'mobilenetv2-12-fp32.onnx')), { inputShape: [1, 3, 224, 224] });
  const folder = join(ASSETS, 'images/imagenet-sample');
  const list = readdirSync(folder).sort().slice(0, 6).map((f) => join(folder, f));
  const first = await sameForWorkerCounts(model, list, presetSpec('imagenet'), { preset: 'advanced', batchSize: 2 }, 'mnv2');
  assert.is(JSON.parse(first.table.toString()).images, 6);
});

test.run();

/**
 * Bad images through the SDK: empty, undecodable and oversized files are BAD_IMAGE errors named
 * after the file; image folders skip what they cannot use (reported through onSkip) or refuse it
 * with `strict`, in openDataset, calibrateImages and evaluate alike.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_IMAGE_PIXELS, parseSpec, planGeometry, sizeSpec } from '../sdk/data/preprocess.js';
import { P2Error } from '../sdk/errors.js';
import { loadModel } from '../sdk/model.js';
import { calibrateImages } from '../sdk/node/calibrate-images.js';
import { openDataset } from '../sdk/node/datasets.js';
import { evaluate } from '../sdk/node/evaluate.js';
import { decodeImage } from '../sdk/node/images.js';
import { noise, pngHeader } from './bad-models.js';
import { buildModel, node, randomTensor } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'p2calib-harden-img-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function rejects(f: () => unknown, code: string, message: RegExp): Promise<void> {
  try {
    await f();
  } catch (e) {
    assert.instance(e, P2Error, String(e));
    assert.is((e as P2Error).code, code, (e as Error).message);
    assert.match((e as Error).message, message);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

const spec = sizeSpec(parseSpec({ preset: 'imagenet', width: 16, height: 16 }), [1, 3, 16, 16]);

test('empty, undecodable and oversized images are BAD_IMAGE naming the file', async () => {
  await rejects(() => decodeImage(new Uint8Array(0), 'a.jpg'), 'BAD_IMAGE', /cannot decode image a\.jpg: the file is empty/);
  await rejects(() => decodeImage(noise(500, 2), 'b.png'), 'BAD_IMAGE', /cannot decode image b\.png: /);
  // Refused from the header: the 2.7 GB of pixels it claims are never allocated.
  await rejects(() => decodeImage(pngHeader(30000, 30000), 'c.png'), 'BAD_IMAGE', new RegExp(`image c\\.png is 30000x30000 pixels, beyond the limit of ${MAX_IMAGE_PIXELS}`));
  // Within the limit, a header with too little data behind it is a decoding error.
  await rejects(() => decodeImage(pngHeader(64, 64), 'd.png'), 'BAD_IMAGE', /cannot decode image d\.png/);
  // The crop's short side (256 in the imagenet preset) applied to a 1-pixel-wide sliver.
  await rejects(() => planGeometry(1, 20000, spec), 'BAD_IMAGE', /a 1x20000 image would be resized to 256x5120000 for "crop", beyond 100000000 pixels/);
  assert.equal(planGeometry(20, 20, spec).resize, { width: 256, height: 256 });
});

test('folders, calibration and evaluation: skipped with a report, or refused with strict', async () => {
  const images = join(dir, 'mixed');
  mkdirSync(images);
  for (let i = 0; i < 2; i++) {
    writeFileSync(join(images, `ok${i}.png`), await sharp(Buffer.from(noise(20 * 20 * 3, i + 1)), { raw: { width: 20, height: 20, channels: 3 } }).png().toBuffer());
  }
  writeFileSync(join(images, 'readme.md'), '# images');
  writeFileSync(join(images, 'labels.csv'), 'a,b');
  writeFileSync(join(images, 'broken.jpg'), noise(64, 3));

  const skipped: string[] = [];
  const ds = openDataset(images, { onSkip: (m) => skipped.push(m) });
  assert.equal(ds.files.map((f) => f.slice(images.length + 1)), ['broken.jpg', 'ok0.png', 'ok1.png']);
  assert.equal(skipped, [`2 files in ${images} are not an image (labels.csv, readme.md) (skipped)`]);
  await rejects(() => openDataset(images, { strict: true }), 'BAD_IMAGE', /labels\.csv is not an image file/);

  const model = await loadModel(buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 16, 16] }], outputs: [{ name: 'y' }],
    nodes: [node('Conv', ['x', 'w'], ['c']), node('Relu', ['c'], ['r']), node('GlobalAveragePool', ['r'], ['p']), node('Flatten', ['p'], ['y'])],
    initializers: { w: randomTensor([4, 3, 3, 3], 1) },
  }));
  // Skipping leaves the calibration exactly what it is without the file, in one thread or two.
  const good = ds.files.filter((f) => !f.endsWith('broken.jpg'));
  const reference = await calibrateImages(model, good, spec, { workers: 1 });
  for (const workers of [1, 2]) {
    skipped.length = 0;
    const cal = await calibrateImages(model, ds.files, spec, { workers, onSkip: (m) => skipped.push(m) });
    assert.is(cal.table.images, 2);
    assert.is(skipped.length, 1, 'reported once, not once per pass');
    assert.match(skipped[0], /cannot decode image .*broken\.jpg: .* \(skipped\)$/);
    assert.equal(cal.toQdqOnnx(), reference.toQdqOnnx());
    assert.equal(cal.table, reference.table);
    await rejects(() => calibrateImages(model, ds.files, spec, { workers, strict: true }), 'BAD_IMAGE', /broken\.jpg/);
  }
  await rejects(() => calibrateImages(model, ds.files.slice(0, 1), spec), 'BAD_IMAGE', /none of the 1 images could be used/);

  skipped.length = 0;
  const r = await evaluate(model, { task: 'generic', dataset: ds, spec, onSkip: (m) => skipped.push(m) });
  assert.equal([r.images, r.skipped, skipped.length], [2, 1, 1]);
  await rejects(() => evaluate(model, { task: 'generic', dataset: ds, spec, strict: true }), 'BAD_IMAGE', /broken\.jpg/);
});

test.run();

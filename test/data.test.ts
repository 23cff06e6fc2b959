import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { P2Error } from '../sdk/errors.js';
import {
  affine, geometry, normalize, parseSpec, placement, planGeometry, presetSpec, sizeSpec, type SizedSpec,
} from '../sdk/data/preprocess.js';
import { INTERPOLATIONS, resizeRgb, type Interpolation, type RgbImage } from '../sdk/data/resize.js';
import { labelsFromList, parseClassList } from '../sdk/data/labels.js';
import { TopKAccuracy } from '../sdk/metrics/classification.js';
import { decodeImage, loadImageTensor, resizeWithSharp } from '../sdk/node/images.js';
import { ASSETS, MODELS, ROOT, assetTest, rng } from './helpers.js';

const IMAGENET = join(ASSETS, 'images/imagenet-sample');

function rgb(width: number, height: number, f: (x: number, y: number, c: number) => number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = f(x, y, c);
  return { width, height, data };
}

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  assert.is(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function throwsCode(fn: () => unknown, code: string, pattern?: RegExp) {
  try {
    fn();
  } catch (e) {
    assert.instance(e, P2Error, String(e));
    assert.is((e as P2Error).code, code);
    if (pattern) assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test('normalize: per-channel affine map, channel order and layout, checked by hand on a 2x1 image', () => {
  const img: RgbImage = { width: 2, height: 1, data: Uint8Array.of(0, 51, 255, 255, 102, 0) };
  const spec: SizedSpec = { ...presetSpec('imagenet'), width: 2, height: 1 };
  const nchw = normalize(img, spec);
  const want = [(0 - 0.485) / 0.229, (1 - 0.485) / 0.229, (0.2 - 0.456) / 0.224, (0.4 - 0.456) / 0.224, (1 - 0.406) / 0.225, (0 - 0.406) / 0.225];
  want.forEach((v, i) => assert.ok(Math.abs(nchw[i] - v) < 1e-6, `${i}: ${nchw[i]} vs ${v}`));
  const bgr = normalize(img, { ...presetSpec('yolox'), width: 2, height: 1, layout: 'NHWC' });
  assert.equal(Array.from(bgr), [255, 51, 0, 0, 102, 255]);
  const deeplab = normalize(img, { ...presetSpec('deeplab'), width: 2, height: 1 });
  assert.equal(Array.from(deeplab, (v) => Math.round(v * 1e5) / 1e5), [-1, -0.6, 1, 1, -0.2, -1]);
  const face = normalize(img, { ...presetSpec('ultraface'), width: 2, height: 1 });
  assert.equal(Array.from(face), [-127 / 128, 1, -76 / 128, -25 / 128, 1, -127 / 128]);
  // A second sample lands after the first.
  const batch = new Float32Array(12);
  normalize(img, spec, batch, 1);
  assert.equal(Array.from(batch.subarray(6)), Array.from(nchw));
  assert.equal(affine(presetSpec('yolox')).source, [2, 1, 0]);
});

test('geometry plans: short side + centre crop, letterbox (top-left and centred), fill', () => {
  const im = presetSpec('imagenet');
  assert.equal(planGeometry(500, 375, im), { resize: { width: 341, height: 256 }, offset: { x: 58, y: 16 }, pad: 0 });
  assert.equal(planGeometry(375, 500, im), { resize: { width: 256, height: 341 }, offset: { x: 16, y: 58 }, pad: 0 });
  const yx = presetSpec('yolox');
  assert.equal(planGeometry(640, 480, yx), { resize: { width: 416, height: 312 }, offset: { x: 0, y: 0 }, pad: 114 });
  assert.equal(planGeometry(640, 480, { ...yx, align: 'center' }).offset, { x: 0, y: -52 });
  assert.equal(placement(640, 480, { ...yx, align: 'center' }), { sx: 0.65, sy: 0.65, dx: 0, dy: 52 });
  assert.equal(planGeometry(640, 480, presetSpec('deeplab')).resize, { width: 257, height: 257 });

  // Letterboxed pixels: the image at the top-left, pad value elsewhere.
  const img = rgb(8, 4, () => 7);
  const lb = geometry(img, { ...yx, width: 8, height: 8, interpolation: 'nearest' });
  for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) assert.is(lb.data[(y * 8 + x) * 3], y < 4 ? 7 : 114, `${x},${y}`);
  const centred = geometry(img, { ...yx, width: 8, height: 8, align: 'center', interpolation: 'nearest' });
  assert.equal([0, 1, 2, 5, 6, 7].map((y) => centred.data[y * 24]), [114, 114, 7, 7, 114, 114]);
  // Centre crop picks the middle.
  const ramp = rgb(6, 4, (x) => x * 10);
  const crop = geometry(ramp, { ...presetSpec('imagenet'), width: 2, height: 2, shortSide: 4, interpolation: 'nearest' });
  assert.equal([crop.data[0], crop.data[3]], [20, 30]);
});

/** Index of the first differing byte and how many differ (-1, -1 when equal). */
function firstDiff(a: Uint8Array, b: Uint8Array): [number, number] {
  assert.is(a.length, b.length);
  let first = -1, n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) { if (first < 0) first = i; n++; }
  return [first, n];
}

async function assertSameAsSharp(img: RgbImage, w: number, h: number, interp: Interpolation, what: string) {
  const a = resizeRgb(img, w, h, interp).data, b = (await resizeWithSharp(img, w, h, interp)).data;
  const [first, n] = firstDiff(a, b);
  assert.ok(n === 0, `${what} ${img.width}x${img.height} -> ${w}x${h} ${interp}: ${n} bytes differ, first at pixel ${Math.floor(first / 3)}`);
}

test('the portable resizer gives the same bytes as sharp: random sizes, noise with steep edges, each kernel, down and up on each axis', async () => {
  const r = rng(20250917);
  const int = (lo: number, hi: number) => Math.floor(r(lo, hi + 1));
  // Sizes that make sample positions fall exactly on libvips' 1/64-pixel table steps (powers of
  // two, simple ratios) are where an inexact model of its arithmetic shows; mix them in.
  const NICE = [16, 32, 64, 96, 128, 160, 224, 256];
  const shrink = (n: number) => {
    const u = r();
    if (u < 0.3) { const c = NICE.filter((v) => v < n); if (c.length) return c[int(0, c.length - 1)]; }
    if (u < 0.6) { const [p, q] = [[6, 5], [5, 4], [4, 3], [3, 2], [8, 5], [2, 1], [5, 2]][int(0, 6)]; const v = Math.round((n * q) / p); if (v >= 1 && v < n) return v; }
    return int(1, n - 1);
  };
  const grow = (n: number) => (r() < 0.3 ? NICE.find((v) => v > n) ?? n * 2 : int(n + 1, n * 4));
  // Each axis shrinks (s), grows (g) or stays (-): horizontal then vertical.
  const MODES = ['ss', 'gg', 'gs', 'sg', 's-', '-s', 'g-', '-g'];
  for (const interp of INTERPOLATIONS) {
    for (let i = 0; i < 40; i++) {
      const mode = MODES[i % MODES.length];
      const W = int(2, 150), H = int(2, 150);
      const w = mode[0] === 's' ? shrink(W) : mode[0] === 'g' ? grow(W) : W;
      const h = mode[1] === 's' ? shrink(H) : mode[1] === 'g' ? grow(H) : H;
      if (w === W && h === H) continue;
      const steep = i % 2 === 0;
      const img = rgb(W, H, () => (steep && r() < 0.4 ? (r() < 0.5 ? 0 : 255) : int(0, 255)));
      await assertSameAsSharp(img, w, h, interp, `case ${i} (${mode})`);
    }
  }
  // The presets' geometries, large factors (integer pre-shrink, 128-pixel tiles), tiny images, and
  // sizes where libvips' tiling shows (positions restarting per 16-row strip or 128-pixel tile, and
  // per tile of an enlargement that follows a vertical shrink).
  const fixed = [[640, 480, 416, 312], [500, 375, 341, 256], [640, 427, 257, 257], [100, 80, 320, 256],
    [300, 900, 500, 200], [900, 300, 120, 500], [1200, 900, 224, 224], [3, 300, 1, 40], [1, 1, 4, 3], [2, 2, 1, 1],
    [218, 515, 218, 192], [329, 1273, 112, 64], [214, 459, 214, 64], [579, 743, 64, 64], [203, 671, 502, 320], [635, 208, 1957, 128]];
  for (const [W, H, w, h] of fixed) {
    const img = rgb(W, H, () => int(0, 255));
    for (const interp of INTERPOLATIONS) await assertSameAsSharp(img, w, h, interp, 'fixed');
  }
});

assetTest(test, 'the portable resizer gives the same bytes as sharp on real photos (resize, crop, letterbox and fill sizes, each kernel)', async () => {
  const dirs = [IMAGENET, join(ASSETS, 'images/coco128-val/images')];
  for (const dir of dirs) {
    for (const f of readdirSync(dir).sort().slice(0, 3)) {
      const img = await decodeImage(join(dir, f));
      const s = 256 / Math.min(img.width, img.height), l = 416 / Math.max(img.width, img.height);
      const sizes = [[Math.round(img.width * s), Math.round(img.height * s)], [Math.round(img.width * l), Math.round(img.height * l)], [257, 257], [img.width * 2 + 1, img.height + 7]];
      for (const [w, h] of sizes) for (const interp of INTERPOLATIONS) await assertSameAsSharp(img, w, h, interp, f);
    }
  }
});

test('decoding: EXIF orientation, grayscale, alpha, CMYK and 16-bit all become 8-bit RGB', async () => {
  // 4x2 image: left half red, right half blue.
  const base = rgb(4, 2, (x, _y, c) => (x < 2 ? [255, 0, 0][c] : [0, 0, 255][c]));
  const raw = { raw: { width: 4, height: 2, channels: 3 as const } };
  // Orientation 6 (rotate 90 clockwise to display): stored 4x2, shown 2x4 with red on top.
  const jpeg = await sharp(base.data, raw).withMetadata({ orientation: 6 }).png().toBuffer();
  const rotated = await decodeImage(jpeg);
  assert.is(rotated.width, 2);
  assert.is(rotated.height, 4);
  assert.equal(Array.from(rotated.data.subarray(0, 3)), [255, 0, 0]);
  assert.equal(Array.from(rotated.data.subarray(21, 24)), [0, 0, 255]);

  const gray = await decodeImage(await sharp(base.data, raw).grayscale().png().toBuffer());
  assert.is(gray.data.length, 4 * 2 * 3);
  assert.ok(gray.data[0] === gray.data[1] && gray.data[1] === gray.data[2] && gray.data[0] > 0);

  // RGBA: opaque pixels keep their colour, transparent ones become white.
  const rgba = Uint8Array.from({ length: 4 * 2 * 4 }, (_, i) => (i % 4 === 3 ? (i < 16 ? 255 : 0) : i % 4 === 1 ? 200 : 10));
  const alpha = await decodeImage(await sharp(rgba, { raw: { width: 4, height: 2, channels: 4 } }).png().toBuffer());
  assert.equal(Array.from(alpha.data.subarray(0, 3)), [10, 200, 10]);
  assert.equal(Array.from(alpha.data.subarray(12, 15)), [255, 255, 255]);

  const cmyk = await decodeImage(await sharp(base.data, raw).toColourspace('cmyk').jpeg({ quality: 100 }).toBuffer());
  assert.ok(cmyk.data[0] > 200 && cmyk.data[2] < 60, `CMYK red decoded as ${cmyk.data.subarray(0, 3)}`);

  const png16 = await sharp(base.data, raw).toColourspace('rgb16').png().toBuffer();
  assert.is((await sharp(png16).metadata()).depth, 'ushort');
  const wide = await decodeImage(png16);
  assert.equal(Array.from(wide.data.subarray(0, 3)), [255, 0, 0]);

  const webp = await decodeImage(await sharp(base.data, raw).webp({ lossless: true }).toBuffer());
  assert.is(maxDiff(webp.data, base.data), 0);
});

test('bad images and bad specs are one-line user errors', async () => {
  try {
    await decodeImage(Uint8Array.of(1, 2, 3, 4), 'junk.jpg');
    assert.unreachable();
  } catch (e) {
    assert.is((e as P2Error).code, 'BAD_IMAGE');
    assert.match((e as Error).message, /junk\.jpg/);
    assert.not.match((e as Error).message, /\n/);
  }
  throwsCode(() => parseSpec({ resize: 'zoom' }), 'BAD_OPTION', /"resize" must be one of fill, letterbox, crop/);
  throwsCode(() => parseSpec({ std: [1, 0, 1] }), 'BAD_OPTION', /non-zero/);
  throwsCode(() => parseSpec({ colour: 'RGB' }), 'BAD_OPTION', /unknown field "colour"/);
  throwsCode(() => presetSpec('vgg'), 'BAD_OPTION', /presets: imagenet, yolox, deeplab, ultraface/);
  throwsCode(() => sizeSpec(presetSpec('imagenet'), [1, 3, 300, 300]), 'BAD_OPTION', /wants 300x300/);
  throwsCode(() => sizeSpec(presetSpec('deeplab'), [1, 3, 257, 257]), 'BAD_OPTION', /not a 3-channel NHWC/);
  // A preset as a base, with overrides; the size can come from the model.
  const spec = sizeSpec(parseSpec({ preset: 'imagenet', width: undefined, channels: 'BGR', mean: 0.5 }), [1, 3, 224, 224]);
  assert.is(spec.channels, 'BGR');
  assert.equal(spec.mean, [0.5, 0.5, 0.5]);
  assert.is(sizeSpec(parseSpec({}), [2, 3, 48, 192]).width, 192);
});

test('the example JSON files are the named presets', () => {
  for (const [file, preset] of [['mobilenetv2', 'imagenet'], ['yolox-nano', 'yolox'], ['deeplabv3', 'deeplab'], ['ultraface', 'ultraface']]) {
    const spec = parseSpec(JSON.parse(readFileSync(join(ROOT, `examples/preprocess/${file}.json`), 'utf8')), file);
    const want = presetSpec(preset);
    for (const k of Object.keys(want) as (keyof SizedSpec)[]) {
      const [a, b] = [spec[k], want[k]];
      if (typeof b === 'number') assert.ok(Math.abs((a as number) - b) < 1e-12, `${file}.${k}`);
      else assert.equal(a, b, `${file}.${k}`);
    }
  }
});

test('ImageNet labels from wnid file-name prefixes or class folders', () => {
  const classes = parseClassList('n01440764\nn01443537\n');
  assert.equal(labelsFromList(['b/n01443537_goldfish.JPEG', 'n01440764/ILSVRC2012_val_00000293.JPEG', 'n01443537/deeper/x.jpg'], classes), [1, 0, 1]);
  throwsCode(() => labelsFromList(['x/cat.jpg'], classes), 'BAD_OPTION', /class "x" .* not in the class list/);
  throwsCode(() => labelsFromList(['n09999999_x.jpg'], classes), 'BAD_OPTION', /class "n09999999"/);
  throwsCode(() => parseClassList('a\nb\na\n'), 'BAD_OPTION', /"a" twice/);
});

assetTest(test, 'MobileNetV2 fp32 under onnxruntime-node with the imagenet preset: 83.8 % top-1 / 97.0 % top-5 on the 500 images', async () => {
  const wnids = parseClassList(readFileSync(join(ASSETS, 'labels/imagenet-wnids.txt'), 'utf8'));
  const files = readdirSync(IMAGENET).filter((f) => f.endsWith('.JPEG')).sort();
  assert.is(files.length, 500);
  const session = await ort.InferenceSession.create(join(MODELS, 'mobilenetv2-12-fp32.onnx'), { logSeverityLevel: 3 });
  const spec = sizeSpec(presetSpec('imagenet'), [1, 3, 224, 224]);
  const acc = new TopKAccuracy();
  const B = 50, per = 3 * 224 * 224;
  for (let i = 0; i < files.length; i += B) {
    const batch = files.slice(i, i + B);
    const x = new Float32Array(batch.length * per);
    await Promise.all(batch.map((f, j) => loadImageTensor(join(IMAGENET, f), spec, x, j)));
    const res = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [batch.length, 3, 224, 224]) });
    const y = res[session.outputNames[0]].data as Float32Array;
    const labels = labelsFromList(batch, wnids);
    batch.forEach((_, j) => acc.add(y.subarray(j * 1000, (j + 1) * 1000), labels[j]));
  }
  await session.release();
  const r = acc.result();
  assert.is(r.top1.toFixed(1), '83.8');
  assert.is(r.top5.toFixed(1), '97.0');
});

test.run();

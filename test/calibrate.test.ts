import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { calibrate, loadCalibration, loadModel } from '../sdk/index.js';
import { decodeModel } from '../sdk/onnx/decode.js';
import { clipOf } from '../sdk/device/spec.js';
import { buildModel, diff, floats, node, ortRun, randomArray, randomTensor, smallCnn } from './helpers.js';

const samples = (n: number, seed = 100) => Array.from({ length: n }, (_, i) => randomArray(3 * 12 * 12, seed + i, -1.5, 1.5));

test('calibrate: every runtime tensor gets a power-of-2 format; the QDQ and calibrated exports run in onnxruntime close to float', async () => {
  const bytes = smallCnn();
  const model = await loadModel(bytes);
  const cal = await calibrate(model, samples(12), { preset: 'simple' });
  for (const [name, q] of Object.entries(cal.spec.tensors)) {
    assert.ok(Number.isInteger(q.scaleLog2), name);
    assert.ok(q.bits === 8, name);
  }
  assert.is(cal.spec.tensors.r1.signed, false);
  assert.is(cal.spec.tensors.c1, cal.spec.tensors.r1, 'a fused conv output takes its activation format');
  assert.is(cal.spec.tensors.flat, cal.spec.tensors.gap, 'Flatten passes its input format through');
  const x = samples(1, 999)[0];
  const ref = await ortRun(bytes, { x: { data: x, dims: [1, 3, 12, 12] } });
  for (const [what, exported] of [['qdq', cal.toQdqOnnx()], ['calibrated', cal.toCalibratedOnnx()]] as const) {
    const out = await ortRun(exported, { x: { data: x, dims: [1, 3, 12, 12] } });
    const d = diff(out.y, ref.y);
    assert.ok(d.max < 0.1 * d.ref + 0.05, `${what}: ${d.max} vs ${d.ref}`);
  }
  // The calibrated model's clips are the PACT2 powers of 2 (the Clip(0,6) too: the seed's rule);
  // the Relu became Clip(0, clip2).
  const g = decodeModel(cal.toCalibratedOnnx());
  const bound = (out: string) => g.initializers.get(g.nodes.find((n) => n.op === 'Clip' && n.outputs[0] === out)!.inputs[2])!.data[0];
  assert.is(bound('r2'), clipOf(cal.spec.tensors.r2)[1]);
  assert.is(bound('r1'), clipOf(cal.spec.tensors.r1)[1]);
  assert.ok(Number.isInteger(Math.log2(bound('r1'))));
  const qdq = decodeModel(cal.toQdqOnnx());
  assert.ok(qdq.nodes.some((n) => n.op === 'QuantizeLinear'));
  assert.ok(qdq.opset >= 13);
});

test("the seed's rule: a Clip(0,6) saturates at its power-of-2 range (8) by default, at 6 with keepClipBounds; engine, QDQ and calibrated export alike", async () => {
  // y1: Clip fused into a Conv; y2: a standalone Clip after a max pool. Both Clips see values in
  // [0, 7.3125], above 6, and their observed range rounds up to 8 (every value exact in 8 bits).
  const bytes = buildModel({
    opset: 13,
    inputs: [{ name: 'x', dims: [1, 1, 4, 10] }],
    outputs: [{ name: 'y1', dims: [1, 1, 4, 10] }, { name: 'y2', dims: [1, 1, 4, 10] }],
    nodes: [
      node('Conv', ['x', 'w', 'b'], ['c1'], { kernel_shape: [1, 1] }), node('Clip', ['c1', 'zero', 'six'], ['y1']),
      node('Conv', ['x', 'w', 'b'], ['c2'], { kernel_shape: [1, 1] }), node('MaxPool', ['c2'], ['m'], { kernel_shape: [1, 1] }),
      node('Clip', ['m', 'zero', 'six'], ['y2']),
    ],
    initializers: { w: floats([1, 1, 1, 1], [0.75]), b: floats([1], [0]), zero: floats([], [0]), six: floats([], [6]) },
  });
  const model = await loadModel(bytes);
  const x = Float32Array.from({ length: 40 }, (_, i) => i / 4);
  const feeds = { x: { data: x, dims: [1, 1, 4, 10] } };
  for (const keepClipBounds of [false, true]) {
    const cal = await calibrate(model, [x], { preset: 'simple', keepClipBounds });
    assert.is(cal.table.keepClipBounds, keepClipBounds);
    const want = Array.from(x, (v) => Math.min(0.75 * v, keepClipBounds ? 6 : 8));
    for (const out of ['y1', 'y2']) assert.equal(clipOf(cal.spec.tensors[out]), [0, 8], out);
    const fixed = await cal.run(x);
    const qdq = await ortRun(cal.toQdqOnnx(), feeds);
    const calibrated = await ortRun(cal.toCalibratedOnnx(), feeds);
    for (const [what, y] of [['fixed', fixed], ['qdq', qdq], ['calibrated', calibrated]] as const) {
      for (const out of ['y1', 'y2']) assert.equal(Array.from(y[out]), want, `${what} ${out}, keepClipBounds ${keepClipBounds}`);
    }
    const again = loadCalibration(model, JSON.parse(JSON.stringify(cal.table)));
    assert.equal(Array.from((await again.run(x)).y1), want);
  }
  // A table from before the option existed was calibrated keeping the bounds.
  const old = JSON.parse(JSON.stringify((await calibrate(model, [x], { preset: 'simple' })).table));
  delete old.keepClipBounds;
  assert.equal(Array.from((await loadCalibration(model, old).run(x)).y1), Array.from(x, (v) => Math.min(0.75 * v, 6)));
});

test('8-bit ranges average the images, 16-bit ranges cover every calibration image', async () => {
  const bytes = buildModel({
    opset: 13,
    inputs: [{ name: 'x', dims: [1, 1, 4, 4] }],
    outputs: [{ name: 'y', dims: [1, 1, 4, 4] }],
    nodes: [
      node('Conv', ['x', 'w', 'b'], ['c'], { kernel_shape: [1, 1] }), node('Relu', ['c'], ['r']),
      node('Conv', ['r', 'w', 'b'], ['y'], { kernel_shape: [1, 1] }),
    ],
    initializers: { w: floats([1, 1, 1, 1], [0.75]), b: floats([1], [0]) },
  });
  const model = await loadModel(bytes);
  // 19 images peak at 0.75 after the first conv, one at 3.
  const images = Array.from({ length: 20 }, (_, i) => Float32Array.from({ length: 16 }, (_, k) => (k / 15) * (i === 7 ? 4 : 1)));
  const at8 = await calibrate(model, images, { preset: 'simple' });
  const at16 = await calibrate(model, images, { preset: 'simple', bits: 16 });
  assert.equal(clipOf(at8.spec.tensors.r), [0, 1]);
  assert.equal(clipOf(at16.spec.tensors.r), [0, 4]);
});

test('calibrate is deterministic and a saved table rebuilds the same calibration', async () => {
  const model = await loadModel(smallCnn());
  const a = await calibrate(model, samples(6), { preset: 'advanced-dw' });
  const b = await calibrate(model, samples(6), { preset: 'advanced-dw' });
  assert.equal(a.toQdqOnnx(), b.toQdqOnnx());
  assert.equal(a.toCalibratedOnnx(), b.toCalibratedOnnx());
  const reloaded = loadCalibration(model, JSON.parse(JSON.stringify(a.table)));
  assert.equal(reloaded.toQdqOnnx(), a.toQdqOnnx());
  assert.equal(reloaded.spec.tensors, a.spec.tensors);
});

test("QDQ with rounding 'device' is bit-exact with the fixed-point run after convs, Add, Mul, Concat and max pooling", async () => {
  // Branches of different magnitudes so that the Add, Mul and Concat rescale (their ties exist).
  const bytes = buildModel({
    opset: 13,
    inputs: [{ name: 'x', dims: [1, 3, 8, 8] }],
    outputs: [{ name: 'y', dims: [1, 8, 4, 4] }],
    nodes: [
      node('Conv', ['x', 'w1', 'b1'], ['c1'], { pads: [1, 1, 1, 1] }),
      node('Relu', ['c1'], ['r1']),
      node('Conv', ['x', 'w2', 'b2'], ['c2'], { pads: [1, 1, 1, 1] }),
      node('Add', ['r1', 'c2'], ['s']),
      node('Mul', ['s', 'r1'], ['m']),
      node('Concat', ['s', 'm'], ['cat'], { axis: 1 }),
      node('MaxPool', ['cat'], ['y'], { kernel_shape: [2, 2], strides: [2, 2] }),
    ],
    initializers: { w1: randomTensor([4, 3, 3, 3], 11), b1: randomTensor([4], 12), w2: randomTensor([4, 3, 3, 3], 13, -8, 8), b2: randomTensor([4], 14) },
  });
  const model = await loadModel(bytes);
  const inputs = Array.from({ length: 4 }, (_, i) => randomArray(3 * 64, 300 + i, -1, 1));
  const cal = await calibrate(model, inputs.slice(0, 3), { preset: 'advanced' });
  const steps = (a: ArrayLike<number>, b: ArrayLike<number>, step: number) => diff(a, b).max / step;
  const step = 2 ** -cal.spec.tensors.y.scaleLog2;
  let onnxSteps = 0;
  for (const x of inputs) {
    const fixed = (await cal.run(x)).y;
    const feeds = { x: { data: x, dims: [1, 3, 8, 8] } };
    const device = await ortRun(cal.toQdqOnnx({ rounding: 'device' }), feeds);
    assert.is(steps(device.y, fixed, step), 0);
    onnxSteps = Math.max(onnxSteps, steps((await ortRun(cal.toQdqOnnx(), feeds)).y, fixed, step));
  }
  assert.ok(onnxSteps > 0, 'with ONNX rounding some tie should land elsewhere (else this model tests nothing)');
  // The default form is DESIGN.md's: int32 biases at scale s_in * s_w, no extra nodes.
  const plain = decodeModel(cal.toQdqOnnx()), device = decodeModel(cal.toQdqOnnx({ rounding: 'device' }));
  assert.is(plain.nodes.filter((n) => n.op === 'Add').length, 1);
  assert.ok(device.nodes.filter((n) => n.op === 'Add').length > 1);
});

test('opset-9 models (Clip attributes, Upsample) export QDQ at opset 13 that onnxruntime runs', async () => {
  const bytes = buildModel({
    opset: 9,
    inputs: [{ name: 'x', dims: [1, 2, 4, 4] }],
    outputs: [{ name: 'y', dims: [1, 2, 8, 8] }],
    nodes: [
      node('Conv', ['x', 'w', 'b'], ['c'], { pads: [1, 1, 1, 1] }),
      node('Clip', ['c'], ['r'], { min: { float: 0 }, max: { float: 6 } }),
      node('Upsample', ['r', 'scales'], ['y'], { mode: 'nearest' }),
    ],
    initializers: { w: randomTensor([2, 2, 3, 3], 1), b: randomTensor([2], 2), scales: floats([4], [1, 1, 2, 2]) },
  });
  const model = await loadModel(bytes);
  const cal = await calibrate(model, [randomArray(32, 4), randomArray(32, 5)], { preset: 'simple' });
  const x = randomArray(32, 6);
  const ref = await ortRun(bytes, { x: { data: x, dims: [1, 2, 4, 4] } });
  const out = await ortRun(cal.toQdqOnnx(), { x: { data: x, dims: [1, 2, 4, 4] } });
  const d = diff(out.y, ref.y);
  assert.ok(d.max < 0.05 * d.ref + 0.05, `${d.max} vs ${d.ref}`);
  const cf = await ortRun(cal.toCalibratedOnnx(), { x: { data: x, dims: [1, 2, 4, 4] } });
  assert.ok(diff(cf.y, ref.y).max < 0.05 * d.ref + 0.05);
});

test('pixel input: the affine map becomes a depthwise 1x1 layer, uint8 input format, same float outputs', async () => {
  const model = await loadModel(smallCnn());
  const affine = { scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], layout: 'NCHW' as const };
  const pixels = model.withPixelInput(affine);
  assert.equal(pixels.graph.nodes[0].op, 'Conv');
  const px = Float32Array.from(randomArray(432, 9, 0, 256), Math.floor);
  const x = px.map((p, i) => (p / 255 - affine.mean[Math.floor(i / 144)]) / affine.std[Math.floor(i / 144)]);
  const [a, b] = [await model.run(x), await pixels.run(px)];
  assert.ok(diff(b.y, a.y).max < 1e-5);
  const cal = await calibrate(pixels, [px], { preset: 'simple' });
  assert.equal(cal.spec.tensors.x, { bits: 8, signed: false, scaleLog2: 0 });
  assert.equal(cal.table.input, { pixels: true, affine });
  // Reloading against the original model re-applies the pixel layer.
  assert.equal(loadCalibration(model, JSON.parse(JSON.stringify(cal.table))).toQdqOnnx(), cal.toQdqOnnx());
});

test('the devkit subsample is seeded: same seed same result, another seed may move the ranges', async () => {
  const model = await loadModel(smallCnn());
  const run = (seed: number) => calibrate(model, samples(4), { preset: 'advanced', subsample: true, seed });
  const [a, b, c] = [await run(1), await run(1), await run(2)];
  assert.equal(a.toQdqOnnx(), b.toQdqOnnx());
  assert.equal(a.table.tensors, b.table.tensors);
  assert.not.equal(JSON.stringify(a.table.tensors), JSON.stringify(c.table.tensors));
});

test('options on a small CNN: 16-bit, mixed precision, estimators, bias calibration knobs, bias form, progress', async () => {
  const bytes = smallCnn();
  const model = await loadModel(bytes);
  const x = samples(1, 999)[0];
  const ref = await ortRun(bytes, { x: { data: x, dims: [1, 3, 12, 12] } });
  // 16-bit everywhere: every tensor and weight in 16 bits, and the QDQ export (Microsoft's 16-bit
  // Q/DQ) follows the calibrated float model (same PACT2 clips) closely in onnxruntime.
  const c16 = await calibrate(model, samples(4), { preset: 'advanced', bits: 16 });
  assert.ok(Object.values(c16.spec.tensors).every((q) => q.bits === 16));
  assert.ok(Object.values(c16.spec.layers).every((l) => l.weights instanceof Int16Array));
  const q16 = await ortRun(c16.toQdqOnnx(), { x: { data: x, dims: [1, 3, 12, 12] } });
  const f16 = await ortRun(c16.toCalibratedOnnx(), { x: { data: x, dims: [1, 3, 12, 12] } });
  const d16 = diff(q16.y, f16.y);
  assert.ok(d16.max < 1e-3 * d16.ref + 1e-3, `16-bit QDQ: ${d16.max}`);
  assert.ok(diff(f16.y, ref.y).max < 0.2 * d16.ref + 0.05);
  // Mixed precision: one layer (and so its output) in 16 bits, the rest in 8.
  const mixed = await calibrate(model, samples(4), { preset: 'advanced', sixteenBit: ['Conv_c3'] });
  assert.is(mixed.spec.tensors.c3.bits, 16);
  assert.ok(mixed.spec.layers.Conv_c3.weights instanceof Int16Array);
  assert.is(mixed.spec.tensors.r1.bits, 8);
  assert.is(mixed.table.sixteenBit[0], 'Conv_c3');
  // Every estimator gives power-of-2 formats.
  for (const estimator of ['minmax', 'percentile:99', 'entropy', 'mse']) {
    const e = await calibrate(model, samples(3), { preset: 'simple', estimator });
    assert.is(e.table.estimator, estimator);
    assert.ok(Object.values(e.table.tensors).every((t) => Number.isInteger(Math.log2(t.clip[1]))), estimator);
  }
  // Bias calibration: factor 0 leaves the biases as they were; the default moves them; more
  // passes and smaller batches move them further from the uncalibrated ones.
  const biasOf = (cal: Awaited<ReturnType<typeof calibrate>>) => Array.from(cal.spec.layers.Conv_c1.bias);
  const none = await calibrate(model, samples(6), { preset: 'advanced', biasCalibrationFactor: 0 });
  const once = await calibrate(model, samples(6), { preset: 'advanced' });
  const more = await calibrate(model, samples(6), { preset: 'advanced', iterations: 3, batchSize: 2 });
  const dist = (a: number[]) => a.reduce((s, v, i) => s + Math.abs(v - biasOf(none)[i]), 0);
  assert.ok(dist(biasOf(once)) > 0 && dist(biasOf(more)) > dist(biasOf(once)), `${dist(biasOf(once))} ${dist(biasOf(more))}`);
  const devkit = await calibrate(model, samples(6), { preset: 'advanced', biasCalibration: 'devkit' });
  assert.is(devkit.table.biasCalibration, 'devkit');
  assert.not.equal(biasOf(devkit), biasOf(once));
  // Bias forms: the MMA split is recorded per channel; int16 has none.
  assert.ok(once.table.layers.Conv_c1.biasA && once.table.layers.Conv_c1.biasB);
  const int16 = await calibrate(model, samples(3), { preset: 'advanced', biasMode: 'int16' });
  assert.is(int16.table.layers.Conv_c1.biasMode, 'int16');
  assert.is(int16.table.layers.Conv_c1.biasA, undefined);
  // Progress: the ranges pass then the bias passes, image by image.
  const seen: string[] = [];
  await calibrate(model, samples(2), { preset: 'advanced', iterations: 2, onProgress: (p) => seen.push(`${p.pass}/${p.passes}:${p.done}`) });
  assert.equal(seen, ['0/3:1', '0/3:2', '1/3:1', '1/3:2', '2/3:1', '2/3:2']);
});

test('bad calibration options are refused with a clear message', async () => {
  const model = await loadModel(smallCnn());
  const bad = async (options: object, pattern: RegExp) => {
    try {
      await calibrate(model, samples(1), options);
      assert.unreachable();
    } catch (e) {
      assert.match((e as Error).message, pattern);
    }
  };
  await bad({ preset: 'fancy' }, /unknown preset/);
  await bad({ bits: 12 }, /bits must be 8 or 16/);
  await bad({ estimator: 'kl' }, /unknown range estimator/);
  await bad({ iterations: 0 }, /iterations must be a positive integer/);
  await bad({ sixteenBit: ['nope'] }, /neither a tensor nor a node/);
  try {
    await calibrate(model, [], {});
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /no calibration samples/);
  }
});

test.run();

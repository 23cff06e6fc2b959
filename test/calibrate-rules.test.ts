/**
 * The rules that make every calibration one the device accepts, each on a model built to need
 * it (issue 14): output scales lowered to a Mul's product, per-channel weight scales capped at
 * the largest shift for dead and denormal channels, MatMul of two activations in integer
 * arithmetic, known output ranges and output peaks, and the verdicts with their causes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { roundShift, saturate } from '../sdk/device/spec.js';
import { FixedPlan } from '../sdk/engine/fixed.js';
import { inspectModel } from '../sdk/inspect.js';
import { calibrate, loadCalibration, loadModel } from '../sdk/index.js';
import type { Preset } from '../sdk/quant/calibrate.js';
import { buildModel, floats, node, randomArray, randomTensor } from './helpers.js';

const PRESETS: Preset[] = ['simple', 'advanced', 'advanced-dw'];
const images = (n: number, size: number, seed: number, scale = 1) => Array.from({ length: n }, (_, i) => randomArray(size, seed + i, -scale, scale));

test('a Mul whose output is almost always 0 calibrates at every preset and bit width: its output scale lowered to the product, recorded', async () => {
  // m = relu(x) * relu(-x) is always 0: PACT2 puts its scale at 2^(8 + 16), far finer than the
  // product's 2^(in_a + in_b).
  const model = await loadModel(buildModel({
    inputs: [{ name: 'x', dims: [1, 2, 4, 4] }], outputs: [{ name: 'y' }],
    nodes: [
      node('Relu', ['x'], ['a']), node('Conv', ['x', 'w', 'b'], ['c']), node('Relu', ['c'], ['nb']),
      node('Mul', ['a', 'nb'], ['m']), node('Conv', ['m', 'w2', 'b2'], ['y']),
    ],
    initializers: { w: floats([2, 2, 1, 1], [-1, 0, 0, -1]), b: floats([2], [0, 0]), w2: randomTensor([2, 2, 1, 1], 4), b2: floats([2], [0.1, -0.1]) },
  }));
  for (const bits of [8, 16] as const) {
    for (const preset of PRESETS) {
      const cal = await calibrate(model, images(3, 32, 10, 16), { preset, bits });
      const [c] = cal.table.compromises!.Mul_m;
      assert.is(c.kind, 'output-scale-lowered', `${preset} ${bits}`);
      assert.is(c.to, cal.spec.tensors.a.scaleLog2 + cal.spec.tensors.nb.scaleLog2);
      assert.ok(c.from! > c.to!);
      assert.match(c.reason, /cannot shift left/);
      assert.is(cal.spec.tensors.m.scaleLog2, c.to);
      assert.ok((await cal.run(images(1, 32, 99)[0])).y.every(Number.isFinite));
      // The table rebuilds the same formats, compromise included.
      assert.equal(loadCalibration(model, JSON.parse(JSON.stringify(cal.table))).spec.tensors, cal.spec.tensors);
    }
  }
});

test('dead and denormal depthwise channels: per-channel scales capped at the largest shift, the channels zeroed and recorded', async () => {
  const w = Array.from(randomTensor([4, 1, 3, 3], 5).data);
  for (let i = 0; i < 9; i++) [w[9 + i], w[18 + i], w[27 + i]] = [0, 4e-39 * (i + 1), 4e-10 * (i - 4)];
  const model = await loadModel(buildModel({
    inputs: [{ name: 'x', dims: [1, 4, 6, 6] }], outputs: [{ name: 'y' }],
    nodes: [node('Conv', ['x', 'w', 'b'], ['c'], { group: 4, pads: [1, 1, 1, 1] }), node('Relu', ['c'], ['y'])],
    // Channel 0's bias makes the output range wide (its scale coarse): the dead channels' shifts
    // in + w - out would leave the word.
    initializers: { w: floats([4, 1, 3, 3], w), b: floats([4], [300, 0, 0, 0]) },
  }));
  for (const bits of [8, 16] as const) {
    const cal = await calibrate(model, images(3, 144, 20), { preset: 'advanced-dw', bits });
    const cs = cal.table.compromises!.Conv_c;
    // 8-bit: the dead channels' scales (2^31 from the 2^-24 floor) would shift by 31 + 7 - out > 31.
    const capped = cs.filter((c) => c.kind === 'weight-scale-lowered' && /shift/.test(c.reason));
    if (bits === 8) assert.ok(capped.some((c) => [1, 2, 3].every((k) => c.channels!.includes(k))), JSON.stringify(cs));
    // The denormal channel quantizes to 0 at any scale the shift allows.
    assert.ok(cs.some((c) => c.kind === 'weights-zeroed' && c.channels!.includes(2)), JSON.stringify(cs));
    const shifts = cal.table.layers.Conv_c.shift;
    assert.ok(shifts.every((n) => n >= 0 && n <= (bits === 8 ? 31 : 62)), `${shifts}`);
    assert.ok((await cal.run(images(1, 144, 98)[0])).y.every(Number.isFinite));
  }
});

test('MatMul of two activations runs in integer arithmetic: an int32 sum of products round-shifted, as a plain reference computes it', async () => {
  const model = await loadModel(buildModel({
    inputs: [{ name: 'a', dims: [1, 3, 5] }], outputs: [{ name: 'y' }],
    nodes: [node('Transpose', ['a'], ['t'], { perm: [0, 2, 1] }), node('MatMul', ['a', 't'], ['p']), node('Softmax', ['p'], ['s'], { axis: -1 }), node('MatMul', ['s', 'a'], ['y'])],
  }));
  const cal = await calibrate(model, images(3, 15, 30, 2), { preset: 'simple' });
  const plan = await cal.fixedPlan(1);
  assert.equal(plan.fallbacks, ['Softmax_s']);
  const a = images(1, 15, 97, 2)[0];
  const keep = await FixedPlan.create(model, 1, cal.spec, { keep: ['a', 't', 'p'] });
  keep.run({ a });
  const [qa, qt, qp] = ['a', 't', 'p'].map((n) => keep.tensor(n));
  const { tensors } = cal.spec;
  const n = tensors.a.scaleLog2 + tensors.t.scaleLog2 - tensors.p.scaleLog2;
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      let acc = 0;
      for (let k = 0; k < 5; k++) acc += qa[i * 5 + k] * qt[k * 3 + j];
      assert.is(qp[i * 3 + j], saturate(roundShift(acc, n), tensors.p.signed ? -128 : 0, tensors.p.signed ? 127 : 255));
    }
  }
  // inspect says which nodes fall back, from the same rules.
  const report = await inspectModel(buildModel({
    inputs: [{ name: 'a', dims: [1, 3, 5] }], outputs: [{ name: 'y' }],
    nodes: [node('Transpose', ['a'], ['t'], { perm: [0, 2, 1] }), node('MatMul', ['a', 't'], ['p']), node('Softmax', ['p'], ['s'], { axis: -1 }), node('MatMul', ['s', 'a'], ['y'])],
  }));
  assert.equal(report.fallback, [{ op: 'Softmax', node: 'Softmax_s' }]);
});

test('known ranges where statistics would cut; outputs keep their peaks (or the average, on request)', async () => {
  // One image in eight drives the logits high: the averaged Sigmoid range stays far below its peak.
  const model = await loadModel(buildModel({
    inputs: [{ name: 'x', dims: [1, 1, 4, 4] }], outputs: [{ name: 'y' }, { name: 'h' }],
    nodes: [
      node('Conv', ['x', 'w', 'b'], ['c']), node('Sigmoid', ['c'], ['s']), node('Conv', ['s', 'w2', 'b2'], ['h']),
      node('Mul', ['x', 'x'], ['y']),
    ],
    initializers: { w: floats([1, 1, 1, 1], [4]), b: floats([1], [-6]), w2: floats([1, 1, 1, 1], [1]), b2: floats([1], [0]) },
  }));
  const xs = Array.from({ length: 8 }, (_, i) => randomArray(16, 40 + i, 0, i === 3 ? 3 : 0.5));
  const peak = await calibrate(model, xs, { preset: 'advanced' });
  assert.equal(peak.table.tensors.s.knownRange, [0, 1]);
  assert.equal(peak.table.tensors.s.clip, [0, 1]);
  const [lo, hi] = peak.table.tensors.s.extremes;
  assert.ok(lo > 0 && hi > 0.5 && peak.table.tensors.s.range[1] < 0.25, `${peak.table.tensors.s.range} ${peak.table.tensors.s.extremes}`);
  // y and h are outputs: their ranges are the extremes over the images.
  for (const t of ['y', 'h']) {
    assert.ok(peak.table.tensors[t].peak, t);
    assert.equal(peak.table.tensors[t].range, peak.table.tensors[t].extremes, t);
  }
  const avg = await calibrate(model, xs, { preset: 'advanced', outputRanges: 'average' });
  assert.is(avg.table.outputRanges, 'average');
  assert.ok(avg.table.tensors.y.range[1] < peak.table.tensors.y.range[1] / 2);
  assert.is(avg.table.tensors.y.peak, undefined);
});

test('verdicts: channels lost to per-tensor depthwise weights point to advanced-dw; thresholds by bits or as given', async () => {
  // Depthwise weights of channel 0 range 2^10 above the others (its input channel is dead, as
  // after BN folding of an unused channel): one per-tensor scale leaves the others few levels.
  const w = Array.from(randomTensor([4, 1, 3, 3], 7).data);
  for (let i = 0; i < 9; i++) w[i] *= 2 ** 10;
  const model = await loadModel(buildModel({
    inputs: [{ name: 'x', dims: [1, 4, 6, 6] }], outputs: [{ name: 'y' }],
    nodes: [node('Conv', ['x', 'w', 'b'], ['c'], { group: 4, pads: [1, 1, 1, 1] }), node('Conv', ['c', 'w2', 'b2'], ['y'])],
    initializers: { w: floats([4, 1, 3, 3], w), b: floats([4], [0, 0, 0, 0]), w2: randomTensor([2, 4, 1, 1], 8), b2: floats([2], [0, 0]) },
  }));
  const xs = images(4, 144, 50).map((x) => x.map((v, i) => (i < 36 ? 0 : v)));
  const cal = await calibrate(model, xs, { preset: 'simple' });
  const v = cal.table.diagnostics!.verdicts.find((x) => x.tensor === 'c')!;
  assert.ok(v && v.sqnr < 12 && v.threshold === 12 && v.node === 'Conv_c', JSON.stringify(cal.table.diagnostics));
  assert.ok(v.cause.kind === 'weights' && v.cause.zeroed + v.cause.fewLevels === 3 && v.cause.spanLog2 >= 10 && !v.cause.perChannel, v.cause.text);
  assert.equal(v.remedy, { kind: 'preset', option: '--preset advanced-dw', text: 'per-channel depthwise weights: --preset advanced-dw' });
  // y inherits it, and says from where.
  const y = cal.table.diagnostics!.verdicts.find((x) => x.tensor === 'y')!;
  assert.ok(y.cause.kind === 'inherited' && y.cause.node === 'Conv_c', y.cause.text);
  const dw = await calibrate(model, xs, { preset: 'advanced-dw' });
  assert.equal(dw.table.diagnostics!.verdicts, []);
  assert.equal(dw.table.diagnostics!.thresholds, { 8: 12, 16: 30 });
  const tight = await calibrate(model, xs, { preset: 'advanced-dw', verdictThreshold: 200 });
  assert.ok(tight.table.diagnostics!.verdicts.length > 0 && tight.table.diagnostics!.verdicts.every((x) => x.threshold === 200));
});

test('verdicts: a Relu6 the seed\'s rule leaves to the 16-bit format\'s limit is named, with --keep-clip-bounds as the remedy', async () => {
  // A 1x1 conv whose outputs reach past 6 on some pixels, then Clip(0, 6): float cuts them at 6, the
  // fixed point (a PACT2 clip whose range [0, 6] rounds to 8) saturates only near 8. Its input is
  // exact, its grid fine: neither rounding nor its input explains its SQNR.
  const model = await loadModel(buildModel({
    inputs: [{ name: 'x', dims: [1, 1, 8, 8] }], outputs: [{ name: 'y' }],
    nodes: [
      node('Conv', ['x', 'w', 'b'], ['c']), node('Clip', ['c', 'zero', 'six'], ['r']),
      node('Conv', ['r', 'w2', 'b2'], ['y']),
    ],
    initializers: {
      w: floats([1, 1, 1, 1], [4]), b: floats([1], [0]), zero: floats([], [0]), six: floats([], [6]),
      w2: floats([1, 1, 1, 1], [0.5]), b2: floats([1], [0]),
    },
  }));
  const xs = images(4, 64, 70, 1).map((x) => x.map((v) => Math.abs(v) * 1.75));
  for (const preset of PRESETS) {
    const cal = await calibrate(model, xs, { preset, bits: 16 });
    const v = cal.table.diagnostics!.verdicts.find((x) => x.tensor === 'r');
    assert.ok(v && v.sqnr < 30, `${preset}: ${JSON.stringify(cal.table.diagnostics)}`);
    assert.ok(v.cause.kind === 'clip-bounds' && v.cause.node === 'Clip_r' && v.cause.bound === 6 && v.cause.limit > 7.99 && v.cause.limit < 8, v.cause.text);
    assert.is(v.remedy.option, '--keep-clip-bounds');
    // The remedy does what it says: with the Clip's bounds kept there is nothing left to name.
    const kept = await calibrate(model, xs, { preset, bits: 16, keepClipBounds: true });
    assert.equal(kept.table.diagnostics!.verdicts, [], preset);
  }
});

test.run();

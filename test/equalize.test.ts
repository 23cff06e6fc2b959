/**
 * Cross-layer equalization: the same function, equal channel ranges across each pair, names kept,
 * Clip(0, hi) joints only when asked (they become Relu), and per-tensor weights that quantize
 * better afterwards.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { calibrate, loadCalibration, loadModel } from '../sdk/index.js';
import { equalizeLayers } from '../sdk/passes/equalize.js';
import { cloneGraph } from '../sdk/graph/ir.js';
import { decodeModel } from '../sdk/onnx/decode.js';
import { buildModel, diff, floats, node, ortRun, randomArray, rng } from './helpers.js';

/** Pointwise (Relu) -> depthwise (Clip 0..6) -> pointwise, whose channels' weight ranges span
 *  three orders of magnitude, as folded BatchNorms leave them. */
function spread(act: 'Clip' | 'Relu' = 'Clip') {
  const r = rng(11);
  const w = (dims: number[], scale: (c: number) => number) => {
    const inner = dims.slice(1).reduce((a, b) => a * b, 1);
    return floats(dims, Array.from({ length: dims[0] * inner }, (_, i) => r(-1, 1) * scale(Math.floor(i / inner))));
  };
  return buildModel({
    inputs: [{ name: 'x', dims: [1, 4, 8, 8] }],
    outputs: [{ name: 'y', dims: [1, 6, 8, 8] }],
    nodes: [
      node('Conv', ['x', 'w1', 'b1'], ['c1'], { kernel_shape: [1, 1] }), node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'wd', 'bd'], ['c2'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], group: 8 }), act === 'Clip' ? node('Clip', ['c2', 'zero', 'six'], ['r2']) : node('Relu', ['c2'], ['r2']),
      node('Conv', ['r2', 'w3', 'b3'], ['y'], { kernel_shape: [1, 1] }),
    ],
    initializers: {
      w1: w([8, 4, 1, 1], (c) => 10 ** (c % 3 - 1)), b1: floats([8], Array.from({ length: 8 }, () => r(0, 0.5))),
      wd: w([8, 1, 3, 3], (c) => 10 ** ((c * 5) % 3 - 1)), bd: floats([8], Array.from({ length: 8 }, () => r(0, 0.5))),
      w3: w([6, 8, 1, 1], () => 0.5), b3: floats([6], Array.from({ length: 6 }, () => r(-0.1, 0.1))),
      zero: floats([], [0]), six: floats([], [6]),
    },
  });
}

const inputs = (n: number, seed: number) => Array.from({ length: n }, (_, i) => randomArray(4 * 64, seed + i, -1, 1));

test('equalization keeps the function and the names, and gives each channel the same range in both layers', async () => {
  const model = await loadModel(spread());
  // Without clips only the Relu joint is equalized; the Clip(0,6) stays and nothing changes function.
  const relu = model.withEqualization({ clips: false });
  const g = cloneGraph(model.graph);
  const result = equalizeLayers(g, { clips: false });
  assert.equal(result.pairs, [['Conv_c1', 'Conv_c2']]);
  assert.equal(result.clips, []);
  assert.equal(relu.graph.nodes.map((n) => [n.name, n.op, n.outputs]), model.graph.nodes.map((n) => [n.name, n.op, n.outputs]));
  const range = (m: typeof model, node: string, c: number, input: boolean) => {
    const n = m.graph.nodes.find((x) => x.name === node)!;
    const w = m.graph.initializers.get(n.inputs[1])!;
    const [o, i] = w.dims;
    const inner = w.data.length / (o * i);
    let r = 0;
    w.data.forEach((v, k) => { if ((input ? Math.floor(k / inner) % i : Math.floor(k / (i * inner))) === c) r = Math.max(r, Math.abs(v)); });
    return r;
  };
  for (let c = 0; c < 8; c++) {
    const [a, b] = [range(relu, 'Conv_c1', c, false), range(relu, 'Conv_c2', c, false)];
    assert.ok(Math.abs(a - b) < 1e-5 * a, `channel ${c}: ${a} vs ${b}`);
  }
  for (const x of inputs(3, 5)) {
    const d = diff((await relu.run(x)).y, (await model.run(x)).y);
    assert.ok(d.max < 1e-5 * d.ref, `${d.max} of ${d.ref}`);
  }

  // With clips the depthwise -> pointwise pair is equalized too, through a Relu in place of the Clip.
  const both = model.withEqualization({ clips: true });
  assert.equal(both.graph.nodes.map((n) => n.op), ['Conv', 'Relu', 'Conv', 'Relu', 'Conv']);
  assert.equal(both.graph.nodes.map((n) => n.name), model.graph.nodes.map((n) => n.name));
  const relus = await loadModel(spread('Relu'));
  for (const x of inputs(3, 9)) {
    const d = diff((await both.run(x)).y, (await relus.run(x)).y);
    assert.ok(d.max < 1e-5 * d.ref, `${d.max} of ${d.ref}`);
  }
});

test('calibrate with equalize: per-tensor weights lose less, the exports carry the equalized weights, the table rebuilds it', async () => {
  const model = await loadModel(spread('Relu'));
  const samples = inputs(16, 100);
  const x = inputs(1, 999)[0];
  const sqnr = (a: Float32Array, b: Float32Array) => {
    let s = 0, e = 0;
    b.forEach((v, i) => { s += v * v; e += (a[i] - v) ** 2; });
    return 10 * Math.log10(s / e);
  };
  const f = (await model.run(x)).y;
  const plain = await calibrate(model, samples, { preset: 'advanced' });
  const eq = await calibrate(model, samples, { preset: 'advanced', equalize: true });
  assert.is(eq.table.equalize, true);
  assert.is(plain.table.equalize, false);
  const [sp, se] = [sqnr((await plain.run(x)).y, f), sqnr((await eq.run(x)).y, f)];
  assert.ok(se > sp + 3, `SQNR ${sp.toFixed(1)} dB without, ${se.toFixed(1)} dB with equalization`);
  // The calibrated float export holds the equalized weights on their power-of-2 grid.
  const weightsOf = (g: ReturnType<typeof decodeModel>) => g.initializers.get(g.nodes.find((n) => n.name === 'Conv_c1')!.inputs[1])!.data;
  const step = 2 ** -eq.table.layers.Conv_c1.weightScaleLog2[0];
  const [exported, equalized, original] = [weightsOf(decodeModel(eq.toCalibratedOnnx())), weightsOf(eq.model.graph), weightsOf(model.graph)];
  exported.forEach((v, i) => assert.ok(Math.abs(v - equalized[i]) <= step / 2, `weight ${i}: ${v} vs ${equalized[i]}`));
  assert.ok(exported.some((v, i) => Math.abs(v - original[i]) > step));
  const qdq = await ortRun(eq.toQdqOnnx({ rounding: 'device' }), { x: { data: x, dims: [1, 4, 8, 8] } });
  const fixed = (await eq.run(x)).y;
  const d = diff(qdq.y, fixed);
  assert.ok(d.max <= 2 ** -eq.spec.tensors.y.scaleLog2, `QDQ vs fixed ${d.max}`);
  const again = loadCalibration(model, JSON.parse(JSON.stringify(eq.table)));
  assert.equal(again.toQdqOnnx(), eq.toQdqOnnx());
});

/** Conv -> BatchNorm -> Relu -> Conv, the second 1x1 without padding (or 3x3 padded), with the
 *  BatchNorm's channels well above zero: beta 2..4, gamma 0.1..0.3, so h = beta - 3|gamma| > 0. */
function normalized(second: '1x1' | 'padded3x3') {
  const r = rng(23);
  const vals = (n: number, lo: number, hi: number) => Array.from({ length: n }, () => r(lo, hi));
  return buildModel({
    inputs: [{ name: 'x', dims: [1, 4, 8, 8] }],
    outputs: [{ name: 'y', dims: [1, 6, 8, 8] }],
    nodes: [
      node('Conv', ['x', 'w1', 'b1'], ['c1'], { kernel_shape: [1, 1] }),
      node('BatchNormalization', ['c1', 'gamma', 'beta', 'mean', 'var'], ['n1']), node('Relu', ['n1'], ['r1']),
      second === '1x1'
        ? node('Conv', ['r1', 'w2', 'b2'], ['y'], { kernel_shape: [1, 1] })
        : node('Conv', ['r1', 'w2', 'b2'], ['y'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
    ],
    initializers: {
      w1: floats([8, 4, 1, 1], vals(32, -0.05, 0.05)), b1: floats([8], vals(8, -0.1, 0.1)),
      gamma: floats([8], vals(8, 0.1, 0.3)), beta: floats([8], vals(8, 2, 4)), mean: floats([8], vals(8, -0.1, 0.1)), var: floats([8], vals(8, 0.5, 1)),
      w2: floats(second === '1x1' ? [6, 8, 1, 1] : [6, 8, 3, 3], vals(second === '1x1' ? 48 : 432, -0.5, 0.5)), b2: floats([6], vals(6, -0.1, 0.1)),
    },
  });
}

test('bias absorption moves what the BatchNorm statistics say is always there into an unpadded next layer', async () => {
  const model = await loadModel(normalized('1x1'));
  const eq = model.withEqualization({ clips: false });
  const bias = (m: typeof model, name: string) => m.graph.initializers.get(m.graph.nodes.find((n) => n.name === name)!.inputs[2])!.data;
  // Each first-layer bias dropped by beta - 3|gamma| (2 - 0.9 at least, before the equalization scale).
  const [before, after] = [bias(model, 'Conv_c1'), bias(eq, 'Conv_c1')];
  const firstW = (m: typeof model) => m.graph.initializers.get(m.graph.nodes.find((n) => n.name === 'Conv_c1')!.inputs[1])!.data;
  const scale = (c: number) => {
    let [a, b] = [0, 0];
    for (let i = c * 4; i < c * 4 + 4; i++) { a = Math.max(a, Math.abs(firstW(model)[i])); b = Math.max(b, Math.abs(firstW(eq)[i])); }
    return a / b;
  };
  for (let c = 0; c < 8; c++) assert.ok(after[c] * scale(c) < before[c] - 1, `channel ${c}: ${before[c]} -> ${after[c] * scale(c)}`);
  assert.equal(eq.graph.nodes.map((n) => [n.name, n.op]), model.graph.nodes.map((n) => [n.name, n.op]));
  // Every pre-activation value here is above its channel's h: the function is unchanged.
  for (const x of inputs(4, 31)) {
    const d = diff((await eq.run(x)).y, (await model.run(x)).y);
    assert.ok(d.max < 1e-5 * d.ref, `${d.max} of ${d.ref}`);
  }
  // The second layer took it: its bias grew by W2 h.
  assert.ok(diff(bias(eq, 'Conv_y'), bias(model, 'Conv_y')).max > 0.1);
  assert.equal(Array.from(bias(model.withEqualization({ clips: false }), 'Conv_y')), Array.from(bias(eq, 'Conv_y')));

  // Into a padded layer nothing moves: its zero borders would stand for -h. Equalization alone
  // keeps each channel's bias/weight ratio (both scale by 1/s_c).
  const padded = await loadModel(normalized('padded3x3'));
  const peq = padded.withEqualization({ clips: false });
  assert.equal(Array.from(bias(peq, 'Conv_y')), Array.from(bias(padded, 'Conv_y')));
  for (const x of inputs(2, 41)) {
    const d = diff((await peq.run(x)).y, (await padded.run(x)).y);
    assert.ok(d.max < 1e-5 * d.ref, `${d.max} of ${d.ref}`);
  }
});

test('equalization keeps each layer\'s largest bias within its ratio to the largest weight before', async () => {
  // Channel 0 has tiny weights and a large bias, the rest the opposite: equalization alone would
  // divide channel 0 by a small s and blow its bias past what a per-tensor MMA bias holds.
  const r = rng(5);
  const w1 = Array.from({ length: 32 }, (_, i) => (i < 4 ? 1e-3 : 1) * r(-1, 1));
  const model = await loadModel(buildModel({
    inputs: [{ name: 'x', dims: [1, 4, 8, 8] }],
    outputs: [{ name: 'y', dims: [1, 6, 8, 8] }],
    nodes: [node('Conv', ['x', 'w1', 'b1'], ['c1'], { kernel_shape: [1, 1] }), node('Relu', ['c1'], ['r1']), node('Conv', ['r1', 'w2', 'b2'], ['y'], { kernel_shape: [1, 1] })],
    initializers: {
      w1: floats([8, 4, 1, 1], w1), b1: floats([8], [0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
      w2: floats([6, 8, 1, 1], Array.from({ length: 48 }, () => r(-1, 1))), b2: floats([6], Array.from({ length: 6 }, () => r(-0.1, 0.1))),
    },
  }));
  const eq = model.withEqualization({ clips: false });
  const init = (m: typeof model, k: number) => m.graph.initializers.get(m.graph.nodes.find((n) => n.name === 'Conv_c1')!.inputs[k])!.data;
  const largest = (a: ArrayLike<number>) => Math.max(...Array.from(a, Math.abs));
  // Before, the largest bias (0.5) is below the largest weight (~1): the ratio bound is 1.
  const ratio = Math.max(1, largest(init(model, 2)) / largest(init(model, 1)));
  assert.is(ratio, 1);
  // The bound is the largest weight as each sweep finds it, which later sweeps lower a little.
  const after = largest(init(eq, 2));
  assert.ok(after <= 1.05 * ratio * largest(init(eq, 1)), `largest bias ${after} against ${largest(init(eq, 1))}`);
  assert.ok(after > largest(init(model, 2)), 'channel 0 grew up to the bound');
  // Without the bound channel 0 would have been scaled by sqrt(r1/r2) ~ 0.03: its weights did move.
  assert.ok(Math.abs(init(eq, 1)[0]) > Math.abs(init(model, 1)[0]));
  for (const x of inputs(2, 51)) {
    const d = diff((await eq.run(x)).y, (await model.run(x)).y);
    assert.ok(d.max < 1e-5 * d.ref, `${d.max} of ${d.ref}`);
  }
});

test('a depthwise layer with per-channel scales keeps no bias bound', async () => {
  // Channel 0 of the depthwise conv has tiny weights and a large bias; the pointwise conv after it
  // reads it with ordinary weights. Per tensor, the bound stops channel 0's growth; per channel,
  // equalization takes it to sqrt(r1 r2) and its bias far past the layer's largest weight.
  const r = rng(7);
  const wd = Array.from({ length: 4 * 9 }, (_, i) => (i < 9 ? 1e-3 : 1) * r(-1, 1));
  const model = await loadModel(buildModel({
    inputs: [{ name: 'x', dims: [1, 4, 8, 8] }],
    outputs: [{ name: 'y', dims: [1, 6, 8, 8] }],
    nodes: [
      node('Conv', ['x', 'wd', 'bd'], ['d'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], group: 4 }), node('Relu', ['d'], ['r']),
      node('Conv', ['r', 'wp', 'bp'], ['y'], { kernel_shape: [1, 1] }),
    ],
    initializers: {
      wd: floats([4, 1, 3, 3], wd), bd: floats([4], [0.5, 0.1, 0.1, 0.1]),
      wp: floats([6, 4, 1, 1], Array.from({ length: 24 }, () => r(-1, 1))), bp: floats([6], Array.from({ length: 6 }, () => r(-0.1, 0.1))),
    },
  }));
  const bias0 = (m: typeof model) => m.graph.initializers.get(m.graph.nodes.find((n) => n.name === 'Conv_d')!.inputs[2])!.data[0];
  const perTensor = bias0(model.withEqualization({ clips: false }));
  const perChannel = bias0(model.withEqualization({ clips: false, perChannelDepthwise: true }));
  assert.ok(perTensor < 1.5, `${perTensor}`);
  assert.ok(perChannel > 5, `${perChannel}`);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { calibrate, loadCalibration, loadModel, type Model } from '../sdk/index.js';
import { FloatPlan } from '../sdk/engine/float.js';
import { WasmRuntime } from '../sdk/engine/wasm.js';
import { CalibrationState, resolveOptions } from '../sdk/quant/calibrate.js';
import { chooseGroups, chooseMixedPrecision, costModel, outputSources, precisionGroups, type Raised } from '../sdk/quant/mixed.js';
import { assertUserError, runCli } from './cli-run.js';
import { buildModel, ints, node, randomArray, randomTensor, smallCnn } from './helpers.js';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A chain where one tensor is clearly sensitive: c2's channel 0 is 200x the others, so that at 8
 * bits its per-tensor step wipes channels 1..7 out, and they are all that Conv_y reads.
 * MACs: Conv_r1 8*8*8*(4*9) = 18432, Conv_c2 64*8*8 = 4096, Conv_y 64*4*8 = 2048.
 */
function sensitiveChain(): Uint8Array {
  const w2 = randomTensor([8, 8, 1, 1], 12, -0.05, 0.05);
  for (let i = 0; i < 8; i++) w2.data[i] = 25; // channel 0: 200x the sum of r1
  const w3 = randomTensor([4, 8, 1, 1], 13, -1, 1);
  for (let o = 0; o < 4; o++) w3.data[o * 8] = 0;
  return buildModel({
    inputs: [{ name: 'x', dims: [1, 4, 8, 8] }],
    outputs: [{ name: 'y', dims: [1, 4, 8, 8] }],
    nodes: [
      node('Conv', ['x', 'w1', 'b1'], ['c1'], { pads: [1, 1, 1, 1] }),
      node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'w2'], ['c2']),
      node('Conv', ['c2', 'w3'], ['y']),
    ],
    initializers: { w1: randomTensor([8, 4, 3, 3], 10, -0.3, 0.3), b1: randomTensor([8], 11, 0, 0.1), w2, w3 },
  });
}
const MACS = 18432 + 4096 + 2048;
const samples = (n: number, seed = 300) => Array.from({ length: n }, (_, i) => randomArray(4 * 8 * 8, seed + i, -1, 1));

/** Output SQNR (dB) of the fixed-point engine against float on held-out samples. */
async function heldOutSqnr(model: Model, run: (x: Float32Array) => Promise<Record<string, Float32Array>>): Promise<number> {
  const { graph, inferred } = model.prepared(1);
  const float = new FloatPlan(await WasmRuntime.create(), graph, inferred);
  let signal = 0, noise = 0;
  for (const x of samples(6, 900)) {
    const f = float.run({ x }).y, q = (await run(x)).y;
    for (let i = 0; i < f.length; i++) {
      signal += f[i] ** 2;
      noise += (f[i] - q[i]) ** 2;
    }
  }
  return 10 * Math.log10(signal / noise);
}

test('mixed precision: the sensitive tensor is chosen within the budget and lifts the output SQNR; factor 1 is all 8-bit', async () => {
  const model = await loadModel(sensitiveChain());
  const plain = await calibrate(model, samples(8), { preset: 'simple' });
  const one = await calibrate(model, samples(8), { preset: 'simple', mixedPrecision: { factor: 1 } });
  assert.ok(Object.values(one.spec.tensors).every((q) => q.bits === 8));
  assert.equal(one.spec.tensors, plain.spec.tensors);
  assert.equal(one.table.mixedPrecision!.chosen, []);
  assert.is(one.table.mixedPrecision!.cost, 1);

  const cal = await calibrate(model, samples(8), { preset: 'simple', mixedPrecision: { factor: 1.8, images: 4 } });
  const mp = cal.table.mixedPrecision!;
  // c2 first; then y, free: Conv_y already runs in 16-bit mode, reading c2.
  assert.equal(mp.chosen.map((g) => g.tensors), [['c2'], ['y']]);
  assert.equal(mp.chosen[0].nodes, ['Conv_c2']);
  assert.is(mp.chosen[1].cost, Math.round((3 * 2048 / MACS) * 1e6) / 1e6);
  // Conv_c2 and its reader Conv_y run in 16-bit mode: 3 x (4096 + 2048) extra MACs.
  assert.is(mp.cost, Math.round((1 + (3 * 6144) / MACS) * 1e6) / 1e6);
  assert.ok(mp.cost <= 1.8);
  assert.ok(mp.chosen[0].gain! > 10, `gain ${mp.chosen[0].gain}`);
  assert.ok(mp.outputSqnr.chosen > mp.outputSqnr.base + 10, JSON.stringify(mp.outputSqnr));
  assert.is(cal.spec.tensors.c2.bits, 16);
  assert.ok(cal.spec.layers.Conv_c2.weights instanceof Int16Array);
  assert.is(cal.spec.tensors.r1.bits, 8);
  assert.is(cal.spec.tensors.y.bits, 16);
  assert.equal(cal.table.sixteenBit, ['c2', 'y']);
  assert.equal(mp.objective, ['y']);
  assert.ok(mp.outputSqnr.all16 >= mp.outputSqnr.chosen - 0.5, JSON.stringify(mp.outputSqnr));
  // On samples it was not calibrated on, too.
  const [q8, qm] = [await heldOutSqnr(model, (x) => plain.run(x)), await heldOutSqnr(model, (x) => cal.run(x))];
  assert.ok(qm > q8 + 10, `held-out SQNR ${q8} -> ${qm}`);
  // The table rebuilds the same calibration.
  const back = loadCalibration(model, JSON.parse(JSON.stringify(cal.table)));
  assert.equal(back.spec.tensors, cal.spec.tensors);

  // A budget too small for c2 never exceeds itself.
  for (const factor of [1.1, 1.5, 2, 4]) {
    const c = await calibrate(model, samples(8), { preset: 'simple', mixedPrecision: { factor, images: 4 } });
    assert.ok(c.table.mixedPrecision!.cost <= factor, `${factor}: ${c.table.mixedPrecision!.cost}`);
    // c1 is stored in r1's format (its Relu is fused).
    const bits16 = Object.entries(c.spec.tensors).filter(([t, q]) => q.bits === 16 && t !== 'c1').map(([t]) => t).sort();
    assert.equal(bits16, [...new Set(c.table.mixedPrecision!.chosen.flatMap((g) => g.tensors))].sort());
    assert.is(bits16.includes('c2'), factor >= 1 + (3 * 6144) / MACS, `${factor}`);
  }
});

test("mixed precision: groups follow TIDL's rule (precision changes only at weight layers, Add/Mul, average pools, BN); the cost model counts MACs x4 in 16-bit mode", async () => {
  const model = await loadModel(smallCnn());
  const { graph, inferred } = model.prepared(1);
  const state = new CalibrationState(graph, inferred, resolveOptions({ preset: 'simple' }));
  // Sigmoid, Concat and MaxPool keep their inputs' precision: sum, r2, gate, cat and mp are one
  // group; Conv_c3's output is a group of its own (the Add may change precision); the model
  // input's group (x) is not a candidate.
  assert.equal(precisionGroups(state), [['r1'], ['r2', 'sum', 'gate', 'cat', 'mp'], ['c3'], ['gap'], ['y']]);
  const cost = costModel(state);
  const raised = (tensors: string[], weights: string[] = []) => ({ tensors: new Set(tensors), weights: new Set(weights) });
  const conv = 8 * 6 * 6 * (3 * 9), dw = 8 * 6 * 6 * 9, pw = 8 * 6 * 6 * 8, gemm = 5 * 16;
  // Elements: Add 288, Sigmoid 288, Concat 576, MaxPool 144, GlobalAveragePool 16.
  const elements = 288 + 288 + 576 + 144 + 16;
  assert.is(cost(raised([])), conv + dw + pw + gemm + elements);
  // y: only the Gemm computing it goes to 16 bits.
  assert.is(cost(raised(['y'])), conv + dw + pw + 4 * gemm + elements);
  // r1: the conv computing it and the two layers reading it (the depthwise conv and the Add).
  assert.is(cost(raised(['r1'])), 4 * conv + 4 * dw + pw + gemm + elements + 288);
  // 16-bit weights with 8-bit activations: 2x the layer's MACs; in 16-bit mode anyway, 4x.
  const nodes = graph.nodes.filter((n) => n.op === 'Conv').map((n) => n.name);
  assert.is(cost(raised([], [nodes[0]])), 2 * conv + dw + pw + gemm + elements);
  assert.is(cost(raised(['r1'], [nodes[0]])), cost(raised(['r1'])));
  // The model outputs and, through the Concat-free outputs here, nothing else: y and gate.
  assert.equal(outputSources(state), ['gate', 'y']);
});

test('mixed precision: noise that compounds from the input, invisible group by group, is stopped where it starts (the prefix choice)', async () => {
  const model = await loadModel(smallCnn());
  const { graph, inferred } = model.prepared(1);
  const state = new CalibrationState(graph, inferred, resolveOptions({ preset: 'simple' }));
  const groups = precisionGroups(state);
  const points = state.placement.points;
  // A stand-in for the measurement: every single group back at 8 bits costs nothing (the others
  // hide it), but the output is only as clean as the run of groups raised from the input on.
  const measure = async (r: Raised) => {
    const raised = groups.map((g) => g.every((p) => r.tensors.has(p)));
    let k = 0;
    while (k < groups.length && raised[k]) k++;
    const db = raised.filter((x) => !x).length <= 1 ? 40 : 10 + (30 * k) / groups.length;
    const sums = new Float64Array(2 * points.length);
    for (let i = 0; i < points.length; i++) [sums[2 * i], sums[2 * i + 1]] = [1, 10 ** (-db / 10)];
    return sums;
  };
  // r1 alone (its conv, the depthwise conv and the Add in 16-bit mode) costs 3.2x all-8-bit.
  const factor = 3.6;
  const report = await chooseMixedPrecision(state, factor, 1, measure);
  assert.is(report.strategy, 'prefix');
  const taken = report.chosen.flatMap((g) => g.tensors);
  assert.ok(taken.length > 0 && taken.length < points.length && report.cost <= factor, JSON.stringify(report.chosen));
  assert.equal(taken, groups.slice(0, report.chosen.length).flat());
  assert.ok(report.outputSqnr.chosen > report.outputSqnr.base);
});

test("mixed precision: the objective counts each tensor a model output concatenates, not only the output", async () => {
  const model = await loadModel(buildModel({
    inputs: [{ name: 'x', dims: [1, 4, 4, 4] }],
    outputs: [{ name: 'out', dims: [1, 16, 6] }],
    nodes: [
      node('Conv', ['x', 'wb'], ['box']),
      node('Conv', ['x', 'ws'], ['logit']),
      node('Sigmoid', ['logit'], ['score']),
      node('Concat', ['box', 'score'], ['cat'], { axis: 1 }),
      node('Reshape', ['cat', 'shape'], ['flat']),
      node('Transpose', ['flat'], ['out'], { perm: [0, 2, 1] }),
    ],
    initializers: { wb: randomTensor([4, 4, 1, 1], 20), ws: randomTensor([2, 4, 1, 1], 21), shape: ints([3], [1, 6, 16]) },
  }));
  const { graph, inferred } = model.prepared(1);
  const state = new CalibrationState(graph, inferred, resolveOptions({ preset: 'simple' }));
  // The Concat in between is only passed through.
  assert.equal(outputSources(state), ['box', 'score', 'out']);
});

test('mixed precision: the greedy choice takes the best gain per cost first, counts a part once and respects the budget', () => {
  const price: Record<string, number> = { a: 10, b: 30, c: 5, wa: 4 };
  const cost = ({ tensors, weights }: Raised) => 100 + [...tensors, ...weights].reduce((n, p) => n + price[p], 0) - (tensors.has('a') && weights.has('wa') ? 4 : 0);
  const r = (tensors: string[], weights: string[] = []): Raised => ({ tensors: new Set(tensors), weights: new Set(weights) });
  const groups = [r(['a']), r(['b']), r(['c'])];
  const parts = [[0], [1], [2]];
  const none = r([]);
  assert.equal(chooseGroups(groups, parts, [1, 6, 0.1], cost, 1.4, none), [1, 0]);
  assert.equal(chooseGroups(groups, parts, [1, 6, 0.1], cost, 1.3, none), [1]);
  assert.equal(chooseGroups(groups, parts, [1, 6, 0.1], cost, 1.2, none), [0, 2]);
  assert.equal(chooseGroups(groups, parts, [1, -6, 0], cost, 2, none), [0]);
  // Points already 16-bit (the user's) count in the budget.
  assert.equal(chooseGroups(groups, parts, [1, 6, 0.1], cost, 1.4, r(['b'])), [0]);
  assert.equal(chooseGroups(groups, parts, [1, 6, 0.1], cost, 1, none), []);
  // a whole (activations 0.3 + weights 1 dB, cost 10) or its weights alone (1 dB, cost 4): the
  // weights go first; a whole then gains its activations' part only, for the 6 it adds.
  const two = [r(['a']), r([], ['wa'])];
  assert.equal(chooseGroups(two, [[0, 1], [1]], [0.3, 1], cost, 1.1, none), [1, 0]);
  assert.equal(chooseGroups(two, [[0, 1], [1]], [0.3, 1], cost, 1.05, none), [1]);
  assert.equal(chooseGroups(two, [[0, 1], [1]], [0, 1], cost, 2, none), [1]);
});

test('mixed precision: bad factors are refused in one line; --mixed-precision on the CLI', async () => {
  const model = await loadModel(sensitiveChain());
  for (const [o, re] of [[{ factor: 0.5 }, /from 1 to 4/], [{ factor: 5 }, /from 1 to 4/], [{ factor: 1.5, images: 0 }, /images must be a positive integer/]] as const) {
    try {
      await calibrate(model, samples(2), { mixedPrecision: o });
      assert.unreachable();
    } catch (e) {
      assert.match((e as Error).message, re);
    }
  }
  try {
    await calibrate(model, samples(2), { bits: 16, mixedPrecision: { factor: 1.5 } });
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /with bits 16 every layer is 16-bit already/);
  }
  const dir = mkdtempSync(join(tmpdir(), 'p2calib-mixed-'));
  try {
    writeFileSync(join(dir, 'm.onnx'), sensitiveChain());
    const bad = await runCli(['calibrate', join(dir, 'm.onnx'), '--images', dir, '--out', join(dir, 'o'), '--mixed-precision', 'lots']);
    assertUserError(bad, /--mixed-precision must be a number >= 1 and <= 4/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mixed precision: a layer raised to 16 bits gets the weight clip chosen for 16 bits (advanced), and back at 8 bits the 8-bit one', async () => {
  // c2's weights: one outlier 40 among values near 1, which the seed's rule clips at 8 bits; at 16
  // bits the clip costs more than the rounding it saves (weightClip), so none is applied.
  const w2 = randomTensor([8, 8, 1, 1], 12, 0.5, 1.5);
  w2.data[0] = 40;
  const model = await loadModel(buildModel({
    inputs: [{ name: 'x', dims: [1, 8, 4, 4] }],
    outputs: [{ name: 'y', dims: [1, 8, 4, 4] }],
    nodes: [node('Conv', ['x', 'w1'], ['c1']), node('Relu', ['c1'], ['r1']), node('Conv', ['r1', 'w2'], ['y'])],
    initializers: { w1: randomTensor([8, 8, 1, 1], 10, -0.3, 0.3), w2 },
  }));
  const { graph, inferred } = model.prepared(1);
  const state = new CalibrationState(graph, inferred, resolveOptions({ preset: 'advanced' }));
  const layer = state.layers.find((l) => l.stored === 'y')!;
  const clip8 = layer.analysis.clippedTo;
  assert.ok(clip8 !== undefined && clip8 < 40, `8-bit clip ${clip8}`);
  state.setMixedPrecision(['y']);
  assert.is(layer.bits, 16);
  assert.is(layer.analysis.clippedTo, undefined);
  state.setMixedPrecision([]);
  assert.is(layer.bits, 8);
  assert.is(layer.analysis.clippedTo, clip8);
  // Weights alone (params_16bit): the layer's weights at 16 bits, its output still 8-bit.
  state.setMixedPrecision([], [layer.node.name]);
  assert.is(layer.bits, 16);
  assert.is(layer.analysis.clippedTo, undefined);
  assert.is(state.bitsOf('y'), 8);
});

test.run();

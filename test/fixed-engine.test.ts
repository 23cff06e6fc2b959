/**
 * The fixed-point engine as calibration drives it: whole networks (kernels == references on
 * every layer of MobileNetV2, 16-bit close to float), batches, float fallback, the calibration
 * API (setBias, channel means of outputs and accumulators) and the errors a bad spec gets.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FixedPlan } from '../sdk/engine/fixed.js';
import { P2Error } from '../sdk/errors.js';
import { loadModel, type Model } from '../sdk/model.js';
import type { QuantSpec } from '../sdk/device/spec.js';
import { captureTraces } from '../sdk/trace/capture.js';
import { compareTraces } from '../sdk/trace/compare.js';
import { traceFiles } from '../sdk/trace/format.js';
import { assetTest, buildModel, floats, node, randomArray, rng } from './helpers.js';
import { mobileNetV2, naiveSpec, specFromRanges } from './quant-helpers.js';

function sqnr(x: Float32Array, ref: Float32Array): number {
  let s = 0, e = 0;
  ref.forEach((v, i) => { s += v * v; e += (x[i] - v) ** 2; });
  return 10 * Math.log10(s / e);
}

async function rejects(p: () => unknown, code: string, pattern: RegExp) {
  try {
    await p();
  } catch (e) {
    assert.instance(e, P2Error, String(e));
    assert.is((e as P2Error).code, code);
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected ${pattern}`);
}

assetTest(test, 'MobileNetV2 8-bit: the kernels compute every layer bit for bit as the references do', async () => {
  const { model, feeds, spec } = await mobileNetV2();
  const [fast, ref] = await Promise.all([FixedPlan.create(model, 1, spec), FixedPlan.create(model, 1, spec, { referenceOnly: true })]);
  assert.equal(fast.fallbacks, []);
  const r = compareTraces(traceFiles(captureTraces(fast, feeds[1])), traceFiles(captureTraces(ref, feeds[1])));
  assert.ok(r.match, `first mismatch: ${JSON.stringify(r.firstMismatch)} ${r.problems}`);
  assert.is(r.layers.length, 66);
});

assetTest(test, 'MobileNetV2 16-bit, per-channel weights: output within 35 dB of float', async () => {
  const { model, feeds, ranges } = await mobileNetV2();
  // Keeping its Clip(0,6) bounds, the device computes the float model's function; by the seed's
  // rule it saturates at 8 instead, which no precision makes up for.
  const spec = specFromRanges(model, ranges, { bits: 16, perChannel: true });
  const plan = await FixedPlan.create(model, 1, { ...spec, keepClipBounds: true });
  const a = plan.run(feeds[0]).output;
  const f = (await model.run(feeds[0])).output;
  assert.ok(sqnr(a, f) > 35, `SQNR ${sqnr(a, f)} dB`);
  const seed = (await FixedPlan.create(model, 1, spec)).run(feeds[0]).output;
  assert.ok(sqnr(seed, f) < sqnr(a, f) - 6, `SQNR ${sqnr(seed, f)} dB by the seed's rule`);
});

/** Conv -> Relu -> Conv -> (Sigmoid) -> Gemm, with a fused activation and optional fallback. */
async function small(batch: number, sigmoid = false): Promise<Model> {
  const r = rng(7);
  const w = (dims: number[], s = 0.5) => floats(dims, Array.from({ length: dims.reduce((a, b) => a * b) }, () => r(-s, s)));
  return loadModel(buildModel({
    inputs: [{ name: 'x', dims: [batch, 2, 6, 6] }],
    outputs: [{ name: 'y' }],
    nodes: [
      node('Conv', ['x', 'W1', 'B1'], ['c1'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }), node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'W2', 'B2'], ['c2'], { kernel_shape: [1, 1] }),
      ...(sigmoid ? [node('Sigmoid', ['c2'], ['s2']), node('Flatten', ['s2'], ['f'])] : [node('Flatten', ['c2'], ['f'])]),
      node('Gemm', ['f', 'W3', 'B3'], ['y'], { transB: 1 }),
    ],
    initializers: { W1: w([4, 2, 3, 3]), B1: w([4]), W2: w([3, 4, 1, 1]), B2: w([3]), W3: w([5, 108], 0.2), B3: w([5]) },
  }));
}

test('a batch of 2 gives, sample by sample, the integers of two single runs', async () => {
  const [m1, m2] = [await small(1), await small(2)];
  const feeds = [0, 1].map((i) => ({ x: randomArray(72, 10 + i, -2, 2) }));
  const spec = await naiveSpec(m1, feeds);
  const one = await FixedPlan.create(m1, 1, spec);
  const two = await FixedPlan.create(m2, 2, spec);
  const both = new Float32Array(144);
  both.set(feeds[0].x);
  both.set(feeds[1].x, 72);
  const y2 = two.run({ x: both }).y;
  feeds.forEach((f, i) => assert.equal(Array.from(y2.subarray(i * 5, i * 5 + 5)), Array.from(one.run(f).y)));
});

test('float fallback: ops without device arithmetic run in float between dequantize and requantize', async () => {
  const m = await small(1, true);
  const feeds = [{ x: randomArray(72, 3, -2, 2) }];
  const spec = await naiveSpec(m, feeds, { bits: 16 });
  const plan = await FixedPlan.create(m, 1, spec, { keep: ['s2', 'c2'] });
  assert.equal(plan.fallbacks, ['Sigmoid_s2']);
  plan.run(feeds[0]);
  const c2 = plan.dequantized('c2'), s2 = plan.tensor('s2');
  const q = spec.tensors.s2;
  c2.forEach((v, i) => assert.is(s2[i], Math.min(2 ** q.bits - 1, Math.round(Math.fround(1 / (1 + Math.exp(-v))) * 2 ** q.scaleLog2))));
  // The WASM table lookup and the TypeScript path agree in 8-bit too.
  const spec8 = await naiveSpec(m, feeds);
  const [fast, ref] = await Promise.all([FixedPlan.create(m, 1, spec8, { keep: ['s2'] }), FixedPlan.create(m, 1, spec8, { keep: ['s2'], referenceOnly: true })]);
  fast.run(feeds[0]);
  ref.run(feeds[0]);
  assert.equal(Array.from(fast.tensor('s2')), Array.from(ref.tensor('s2')));
});

test('float fallback tabulated (more elements than input integers): the lookup kernel gives the reference integers, every input type', async () => {
  // Sigmoid of a signed conv output and of an unsigned Relu output, at 8 bits (256 < 520
  // elements) and at 16 bits (65536 < 66560 elements).
  for (const [bits, [h, w]] of [[8, [10, 13]], [16, [128, 130]]] as const) {
    const r = rng(bits);
    const m = await loadModel(buildModel({
      inputs: [{ name: 'x', dims: [1, 2, h, w] }],
      outputs: [{ name: 'ys' }, { name: 'yu' }],
      nodes: [
        node('Conv', ['x', 'W', 'B'], ['c'], { kernel_shape: [1, 1] }), node('Sigmoid', ['c'], ['ys']),
        node('Relu', ['c'], ['r']), node('Sigmoid', ['r'], ['yu']),
      ],
      initializers: { W: floats([4, 2, 1, 1], Array.from({ length: 8 }, () => r(-2, 2))), B: floats([4], [0.1, -0.2, 0.3, 0]) },
    }));
    const feeds = [{ x: randomArray(2 * h * w, bits, -3, 3) }];
    const spec = await naiveSpec(m, feeds, { bits });
    const [fast, ref] = await Promise.all([FixedPlan.create(m, 1, spec, { keep: ['c', 'r'] }), FixedPlan.create(m, 1, spec, { keep: ['c', 'r'], referenceOnly: true })]);
    assert.equal(fast.fallbacks, ['Sigmoid_ys', 'Sigmoid_yu']);
    fast.run(feeds[0]);
    assert.equal([fast.tensor('c').constructor.name, fast.tensor('r').constructor.name], bits === 8 ? ['Int8Array', 'Uint8Array'] : ['Int16Array', 'Uint16Array']);
    ref.run(feeds[0]);
    for (const t of ['ys', 'yu']) assert.equal(Array.from(fast.tensor(t)), Array.from(ref.tensor(t)), `${bits}-bit ${t}`);
  }
});

test('calibration API: output and accumulator channel means, setBias moves a layer by its bias', async () => {
  const m = await small(2);
  const feeds = [{ x: randomArray(144, 5, -2, 2) }];
  const spec = await naiveSpec(m, feeds);
  const plan = await FixedPlan.create(m, 2, spec, { keep: ['r1', 'c2', 'y'] });
  assert.equal(plan.weightLayers, ['Conv_c1', 'Conv_c2', 'Gemm_y']);
  const out = plan.runWithMeans(feeds[0], 'output').means;
  // Output means: the dequantized tensor averaged over batch and positions, per channel.
  const r1 = plan.dequantized('r1');
  for (let c = 0; c < 4; c++) {
    let s = 0;
    for (let b = 0; b < 2; b++) for (let i = 0; i < 36; i++) s += r1[(b * 4 + c) * 36 + i];
    assert.ok(Math.abs(out.get('Conv_c1')![c] - s / 72) < 1e-9);
  }
  // The accumulator before the shift: equal to the output mean within half an output step
  // where nothing saturates (the last Gemm: outputs well inside their range).
  const acc = plan.runWithMeans(feeds[0], 'accumulator').means;
  const lsb = 2 ** -spec.tensors.y.scaleLog2;
  out.get('Gemm_y')!.forEach((v, c) => assert.ok(Math.abs(v - acc.get('Gemm_y')![c]) <= lsb / 2 + 1e-9, `${v} vs ${acc.get('Gemm_y')![c]}`));
  // Means of a Relu layer's accumulator are below its output's: negatives are cut.
  acc.get('Conv_c1')!.forEach((v, c) => assert.ok(v <= out.get('Conv_c1')![c] + 2 ** -spec.tensors.r1.scaleLog2));

  const before = plan.runWithMeans(feeds[0], 'output').means.get('Gemm_y')!;
  const bias = Float32Array.from(spec.layers.Gemm_y.bias, (b, c) => b + (c - 2) * 8 * lsb);
  plan.setBias('Gemm_y', bias);
  const after = plan.runWithMeans(feeds[0], 'output').means.get('Gemm_y')!;
  after.forEach((v, c) => assert.ok(Math.abs(v - before[c] - (c - 2) * 8 * lsb) <= lsb, `channel ${c}: ${before[c]} -> ${v}`));
  await rejects(() => plan.setBias('Conv_nope', bias), 'BAD_INPUT', /"Conv_nope" is not a weight layer/);
  await rejects(() => plan.setBias('Gemm_y', new Float32Array(2)), 'BAD_INPUT', /bias needs 5 values, got 2/);
});

test('a bad spec is refused with what calibration must guarantee', async () => {
  const m = await small(1);
  const feeds = [{ x: randomArray(72, 6, -2, 2) }];
  const spec = await naiveSpec(m, feeds);
  const copy = (): QuantSpec => structuredClone(spec);
  const s1 = copy();
  s1.tensors.c2.scaleLog2 = s1.tensors.r1.scaleLog2 + s1.layers.Conv_c2.weightScaleLog2[0] + 1;
  await rejects(() => FixedPlan.create(m, 1, s1), 'BAD_INPUT',
    /node "Conv_c2" \(Conv\): channel 0: the output scale 2\^\d+ is finer than the accumulator scale .*calibration must keep out.scaleLog2 <= in.scaleLog2 \+ weightScaleLog2/);
  const s2 = copy();
  delete s2.tensors.r1;
  await rejects(() => FixedPlan.create(m, 1, s2), 'BAD_INPUT', /no format \(TensorQ\) for tensor "r1"/);
  const s3 = copy();
  s3.layers.Conv_c2.weights = new Int8Array(3);
  await rejects(() => FixedPlan.create(m, 1, s3), 'BAD_INPUT', /weights hold 3 values; the weight \[3,4,1,1\] has 12/);
  const s4 = copy();
  s4.layers.Relu_r1 = s4.layers.Conv_c2;
  await rejects(() => FixedPlan.create(m, 1, s4), 'BAD_INPUT', /layer "Relu_r1" is not a Conv\/ConvTranspose\/Gemm\/MatMul node/);
  const s5 = copy();
  s5.tensors.x.scaleLog2 += 40;
  await rejects(() => FixedPlan.create(m, 1, s5), 'BAD_INPUT', /node "Conv_c1" \(Conv\): channel 0: shift \d+ exceeds 31, the largest the 8-bit path takes/);
  await rejects(() => (FixedPlan.create(m, 1, spec).then((p) => p.run({ x: new Float32Array(3) }))), 'BAD_INPUT', /input "x" has 3 values/);
});

test.run();

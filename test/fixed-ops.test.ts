/**
 * The fixed-point kernels against their TypeScript references, bit for bit, on generated models
 * with random formats, weights and biases: odd channel counts, groups, strides, pads, dilations,
 * batches, fused activations, 8- and 16-bit, saturation at both ends, small shifts (where ties
 * are frequent, negative ones included) up to the largest the paths take.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FixedPlan } from '../sdk/engine/fixed.js';
import { conv, type ConvParams } from '../sdk/ops/conv.js';
import { fusedActivation, weightFacts } from '../sdk/ops/index.js';
import { consumers, type Node } from '../sdk/graph/ir.js';
import { loadModel, type Model } from '../sdk/model.js';
import {
  avgPoolMultiplier, dequantizeValue, deviceBias, qRange, quantizeValue, rescaleFactor, roundHalfAway, roundShift, saturationBounds,
  type BiasMode, type Bits, type LayerQ, type QuantSpec, type TensorQ,
} from '../sdk/device/spec.js';
import { buildModel, floats, ints, node, randomConvTranspose, rng, type ModelSpec } from './helpers.js';

interface SpecOptions {
  bits: Bits;
  perChannel?: boolean;
  biasMode?: BiasMode;
  /** Largest requantizing shift drawn (weight layers and Mul). */
  maxShift?: number;
  inputBits?: Bits;
  /** Data-moving ops keep their input's format (their integer kernels run only then). */
  keepMoves?: boolean;
}

const MOVES = new Set(['Slice', 'Transpose', 'Resize']);

/** Every runtime tensor a random format; weight layers random full-range integer weights. */
function randomSpec(model: Model, seed: number, o: SpecOptions): QuantSpec {
  const r = rng(seed);
  const int = (lo: number, hi: number) => Math.floor(r(lo, hi + 1));
  const { graph, inferred: inf } = model;
  const tensors: Record<string, TensorQ> = {};
  const runtime = [...graph.inputs.map((v) => v.name), ...graph.nodes.flatMap((n) => n.outputs)].filter((t) => t && !inf.values.get(t)?.value);
  for (const t of runtime) tensors[t] = { bits: o.bits, signed: r() < 0.5, scaleLog2: int(-3, 6) + (o.bits === 16 ? 8 : 0) };
  // Mixed precision: 8-bit model inputs into 16-bit layers.
  if (o.inputBits) for (const v of graph.inputs) tensors[v.name] = { ...tensors[v.name], bits: o.inputBits, scaleLog2: int(-3, 6) };
  if (o.keepMoves) for (const n of inf.order) if (MOVES.has(n.op)) tensors[n.outputs[0]] = { ...tensors[n.inputs[0]] };
  const readers = consumers(graph);
  const outputs = new Set(graph.outputs.map((v) => v.name));
  const effective = (n: Node) => fusedActivation(n, readers, outputs, (a) => inf.compiled.get(a)!.params)?.node.outputs[0] ?? n.outputs[0];
  const shift = () => (r() < 0.4 ? int(0, 2) : int(0, o.maxShift ?? 12));
  const layers: Record<string, LayerQ> = {};
  for (const n of inf.order) {
    if (n.op === 'Mul' && n.inputs.every((i) => tensors[i])) {
      tensors[effective(n)].scaleLog2 = tensors[n.inputs[0]].scaleLog2 + tensors[n.inputs[1]].scaleLog2 - shift();
    }
    const facts = weightFacts(n);
    if (!facts) continue;
    const w = inf.values.get(n.inputs[1])!.value!;
    const channels = facts.layout(inf.compiled.get(n)!.params, w).channels;
    const [lo, hi] = qRange(o.bits, true);
    // Mostly small weights, some at both ends of the range.
    const weights = o.bits === 16 ? new Int16Array(w.data.length) : new Int8Array(w.data.length);
    // 16-bit: odd seeds keep weights off -32768 (the SIMD product), even ones not (the scalar kernel).
    const min = o.bits === 16 && seed % 2 ? lo + 1 : lo;
    for (let i = 0; i < weights.length; i++) weights[i] = r() < 0.1 ? (r() < 0.5 ? min : hi) : int(lo / 4, hi / 4);
    const wLog2 = Array.from({ length: o.perChannel ? channels : 1 }, () => int(4, 8) + (o.bits === 16 ? 8 : 0));
    const inQ = tensors[n.inputs[0]];
    const out = tensors[effective(n)];
    out.scaleLog2 = inQ.scaleLog2 + Math.min(...wLog2) - shift();
    const range = 2 ** (qRange(out.bits, false)[1] > 255 ? 15 : 7) * 2 ** -out.scaleLog2;
    const bias = Float32Array.from({ length: channels }, () => (r() < 0.05 ? 1e3 : 1) * r(-range, range));
    layers[n.name] = { weights, weightScaleLog2: wLog2, bias };
  }
  return { tensors, layers, biasMode: o.biasMode ?? 'mma' };
}

/** Random float feeds spanning past both ends of each input's format (saturation included). */
function feedsFor(model: Model, spec: QuantSpec, seed: number): Record<string, Float32Array> {
  const r = rng(seed);
  const feeds: Record<string, Float32Array> = {};
  for (const v of model.inputs) {
    const q = spec.tensors[v.name];
    const [lo, hi] = qRange(q.bits, q.signed).map((x) => x * 2 ** -q.scaleLog2);
    const span = hi - Math.min(lo, -hi);
    feeds[v.name] = Float32Array.from({ length: v.shape.reduce((a, b) => a * b, 1) }, () => r(Math.min(lo, -hi) - span * 0.1, hi + span * 0.1));
  }
  return feeds;
}

/** Kernels and references must agree on every tensor and on both kinds of channel means. */
async function bitExact(spec: ModelSpec, o: SpecOptions, seeds = [1, 2, 3]): Promise<void> {
  const model = await loadModel(buildModel(spec));
  const keep = model.graph.nodes.flatMap((n) => n.outputs).filter((t) => t && !model.inferred.values.get(t)?.value);
  for (const seed of seeds) {
    const qs = randomSpec(model, seed, o);
    const [fast, ref] = await Promise.all([
      FixedPlan.create(model, model.inputs[0].shape[0], qs, { keep }),
      FixedPlan.create(model, model.inputs[0].shape[0], qs, { keep, referenceOnly: true }),
    ]);
    assert.equal(fast.fallbacks, [], 'no float fallback expected');
    const feeds = feedsFor(model, qs, seed + 100);
    const a = fast.run(feeds), b = ref.run(feeds);
    for (const t of fast.layers.flatMap((l) => l.outputs)) {
      const x = fast.tensor(t.name), y = ref.tensor(t.name);
      const bad = x.findIndex((v, i) => v !== y[i]);
      assert.is(bad, -1, `seed ${seed}, tensor ${t.name} (${t.type}) differs at ${bad}: kernel ${x[bad]}, reference ${y[bad]}`);
    }
    for (const k of Object.keys(b)) assert.equal(a[k], b[k]);
    for (const of of ['output', 'accumulator'] as const) {
      const ma = fast.runWithMeans(feeds, of).means, mb = ref.runWithMeans(feeds, of).means;
      for (const [k, v] of mb) assert.equal(Array.from(ma.get(k)!), Array.from(v), `${of} means of ${k}`);
    }
  }
}

interface ConvCase {
  c: number; m: number; h: number; w: number; k: number[]; stride?: number[]; pads?: number[]; group?: number;
  dil?: number[]; batch?: number; act?: 'Relu' | 'Clip';
  /** ConvTranspose only. */
  outPad?: number[];
}

/** A Conv (or ConvTranspose, whose weight is [c, m/group, kh, kw]) with random weights and bias. */
function convModel(cc: ConvCase, op: 'Conv' | 'ConvTranspose' = 'Conv'): ModelSpec {
  const [kh, kw] = cc.k;
  const group = cc.group ?? 1;
  const r = rng(cc.c * 31 + cc.m);
  const attrs: Record<string, number[] | number> = { kernel_shape: cc.k, group };
  if (cc.stride) attrs.strides = cc.stride;
  if (cc.pads) attrs.pads = cc.pads;
  if (cc.dil) attrs.dilations = cc.dil;
  if (cc.outPad) attrs.output_padding = cc.outPad;
  const nodes = [node(op, ['x', 'W', 'B'], [cc.act ? 'z' : 'y'], attrs)];
  if (cc.act === 'Relu') nodes.push(node('Relu', ['z'], ['y']));
  if (cc.act === 'Clip') nodes.push(node('Clip', ['z', 'lo', 'hi'], ['y']));
  const wDims = op === 'Conv' ? [cc.m, cc.c / group, kh, kw] : [cc.c, cc.m / group, kh, kw];
  return {
    inputs: [{ name: 'x', dims: [cc.batch ?? 1, cc.c, cc.h, cc.w] }],
    outputs: [{ name: 'y' }],
    nodes,
    initializers: {
      W: floats(wDims, Array.from({ length: wDims.reduce((a, b) => a * b) }, () => r(-1, 1))),
      B: floats([cc.m], Array.from({ length: cc.m }, () => r(-1, 1))),
      lo: floats([], [0]),
      hi: floats([], [6]),
    },
  };
}

const CONVS: [string, ConvCase][] = [
  ['pointwise, odd channels, batch 2', { c: 5, m: 7, h: 5, w: 7, k: [1, 1], batch: 2 }],
  ['pointwise + Relu', { c: 16, m: 9, h: 8, w: 8, k: [1, 1], act: 'Relu' }],
  ['3x3 stride 1 pad 1 + Clip', { c: 3, m: 8, h: 11, w: 29, k: [3, 3], pads: [1, 1, 1, 1], act: 'Clip' }],
  ['3x3 stride 2 pad 1 (a first layer)', { c: 3, m: 12, h: 16, w: 41, k: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1] }],
  ['depthwise 3x3 stride 1 + Clip', { c: 7, m: 7, h: 9, w: 10, k: [3, 3], pads: [1, 1, 1, 1], group: 7, act: 'Clip' }],
  ['depthwise 3x3 stride 2', { c: 6, m: 6, h: 13, w: 11, k: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1], group: 6 }],
  ['depthwise 3x3 stride 2, asymmetric pads', { c: 5, m: 5, h: 12, w: 12, k: [3, 3], stride: [2, 2], pads: [0, 0, 1, 1], group: 5 }],
  ['depthwise 3x3, no pads, wide rows', { c: 3, m: 3, h: 6, w: 37, k: [3, 3], group: 3, batch: 2 }],
  ['depthwise 5x5 (generic path)', { c: 4, m: 4, h: 9, w: 9, k: [5, 5], pads: [2, 2, 2, 2], group: 4 }],
  ['depthwise with multiplier 2', { c: 3, m: 6, h: 7, w: 7, k: [3, 3], pads: [1, 1, 1, 1], group: 3 }],
  ['grouped 3x3, group 2', { c: 6, m: 4, h: 7, w: 9, k: [3, 3], pads: [1, 1, 1, 1], group: 2 }],
  ['dilated 3x3', { c: 4, m: 5, h: 11, w: 30, k: [3, 3], dil: [2, 2], pads: [2, 2, 2, 2] }],
  ['1x1 stride 2', { c: 9, m: 3, h: 9, w: 33, k: [1, 1], stride: [2, 2] }],
  ['1x3 kernel, asymmetric pads', { c: 3, m: 5, h: 4, w: 17, k: [1, 3], pads: [0, 2, 0, 0] }],
];

/** 16-bit depthwise convs have their own kernel: every tap's border case, kernels wider than the input. */
const DILATED_DW: [string, ConvCase] = ['depthwise 3x5 stride 2x1, dilation 2x3, pads wider than the input', {
  c: 3, m: 3, h: 5, w: 9, k: [3, 5], stride: [2, 1], dil: [2, 3], pads: [3, 6, 2, 1], group: 3,
}];
for (const [name, cc] of CONVS) {
  test(`conv 8-bit kernel == reference: ${name}`, () => bitExact(convModel(cc), { bits: 8, perChannel: cc.group === cc.c }));
}
test('conv 8-bit kernel == reference: int16 bias form, per-channel scales', () =>
  bitExact(convModel(CONVS[2][1]), { bits: 8, perChannel: true, biasMode: 'int16' }));
test('conv 8-bit kernel == reference: the largest shifts', () =>
  bitExact(convModel(CONVS[0][1]), { bits: 8, maxShift: 31 }, [4, 5, 6, 7]));
for (const [name, cc] of [CONVS[0], CONVS[1], CONVS[3], ...CONVS.slice(4, 11), DILATED_DW]) {
  test(`conv 16-bit kernel == reference: ${name}`, () => bitExact(convModel(cc), { bits: 16, perChannel: true, maxShift: 40 }, [1, 2, 3, 5]));
}
test('conv 16-bit kernel == reference: 8-bit inputs into 16-bit layers', async () => {
  for (const cc of [CONVS[0][1], CONVS[3][1], CONVS[4][1], DILATED_DW[1]]) await bitExact(convModel(cc), { bits: 16, inputBits: 8 }, [1, 3]);
});

const CONV_TRANSPOSES: [string, ConvCase][] = [
  ['2x2 stride 2 (U-Net upsampling), batch 2', { c: 5, m: 3, h: 6, w: 9, k: [2, 2], stride: [2, 2], batch: 2 }],
  ['3x3 stride 2, pads, output_padding + Relu', { c: 4, m: 6, h: 7, w: 5, k: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1], outPad: [1, 1], act: 'Relu' }],
  ['7x7 stride 1 (a Conv with full pads)', { c: 3, m: 4, h: 9, w: 11, k: [7, 7] }],
  ['5x5 stride 3x2, dilation 2, grouped', { c: 4, m: 6, h: 5, w: 6, k: [5, 5], stride: [3, 2], dil: [2, 2], group: 2, pads: [2, 1, 0, 3] }],
  ['kernel smaller than the stride (outputs that are only bias)', { c: 3, m: 2, h: 4, w: 5, k: [1, 2], stride: [3, 3] }],
  ['depthwise 3x3 stride 1, pads past the kernel', { c: 5, m: 5, h: 8, w: 9, k: [3, 3], group: 5, pads: [3, 2, 4, 3] }],
];

for (const [name, cc] of CONV_TRANSPOSES) {
  test(`ConvTranspose 8-bit kernel == reference: ${name}`, () => bitExact(convModel(cc, 'ConvTranspose'), { bits: 8, perChannel: true }));
}
test('ConvTranspose 8-bit kernel == reference: random shapes, strides, dilations, groups, pads', async () => {
  const r = rng(78);
  for (let i = 0; i < 16; i++) await bitExact(randomConvTranspose(r, i), { bits: 8, perChannel: r() < 0.5 }, [i + 1]);
});
for (const [name, cc] of [CONV_TRANSPOSES[1], CONV_TRANSPOSES[3]]) {
  test(`ConvTranspose 16-bit kernel == reference: ${name}`, () => bitExact(convModel(cc, 'ConvTranspose'), { bits: 16, perChannel: true, maxShift: 40 }, [1, 2]));
}

const fc = (op: 'Gemm' | 'MatMul', transB: boolean, xDims: number[], k: number, n: number): ModelSpec => ({
  inputs: [{ name: 'x', dims: xDims }],
  outputs: [{ name: 'y' }],
  nodes: [op === 'Gemm' ? node('Gemm', ['x', 'W', 'B'], ['z'], { transB: +transB }) : node('MatMul', ['x', 'W'], ['z']), node('Relu', ['z'], ['y'])],
  initializers: { W: floats(transB ? [n, k] : [k, n], new Array(n * k).fill(0.5)), B: floats([n], new Array(n).fill(0)) },
});

for (const bits of [8, 16] as const) {
  test(`Gemm/MatMul ${bits}-bit kernel == reference: transB, odd sizes, rows`, async () => {
    await bitExact(fc('Gemm', false, [3, 37], 37, 11), { bits }, [1, 2, 3, 5]);
    await bitExact(fc('Gemm', true, [1, 20], 20, 9), { bits, perChannel: true });
    await bitExact(fc('MatMul', false, [2, 3, 13], 13, 6), { bits });
    if (bits === 16) await bitExact(fc('Gemm', true, [2, 19], 19, 7), { bits, inputBits: 8 }, [1, 3]);
  });
}

const eltwise = (op: string, aDims: number[], bDims: number[], act?: string): ModelSpec => ({
  inputs: [{ name: 'a', dims: aDims }, { name: 'b', dims: bDims }],
  outputs: [{ name: 'y' }],
  nodes: act ? [node(op, ['a', 'b'], ['z']), node(act, ['z'], ['y'])] : [node(op, ['a', 'b'], ['y'])],
});

for (const bits of [8, 16] as const) {
  test(`Add/Sub/Mul ${bits}-bit kernel == reference (same shape, broadcast, fused Relu)`, async () => {
    await bitExact(eltwise('Add', [1, 3, 5, 7], [1, 3, 5, 7]), { bits }, [1, 2, 3, 4, 5, 6]);
    await bitExact(eltwise('Add', [2, 4, 3, 3], [2, 4, 3, 3], 'Relu'), { bits });
    await bitExact(eltwise('Sub', [1, 21], [1, 21]), { bits });
    await bitExact(eltwise('Add', [1, 3, 4, 4], [1, 3, 1, 1]), { bits });
    await bitExact(eltwise('Mul', [1, 6, 2, 2], [1, 6, 1, 1]), { bits });
    await bitExact(eltwise('Mul', [2, 5, 3, 7], [2, 5, 3, 7], 'Relu'), { bits, maxShift: bits === 8 ? 16 : 31 }, [1, 2, 3, 4, 5, 6]);
    // Broadcasts with runs of 16 or more: per channel (SE blocks), across channels, a row.
    await bitExact(eltwise('Mul', [1, 6, 5, 9], [1, 6, 1, 1]), { bits });
    await bitExact(eltwise('Add', [2, 3, 4, 20], [2, 1, 4, 20], 'Relu'), { bits });
    await bitExact(eltwise('Sub', [1, 1, 4, 33], [1, 5, 4, 33]), { bits });
    await bitExact(eltwise('Mul', [2, 4, 17], [17]), { bits });
  });
}

test('moving, pooling, concat and activation ops: kernel == reference, 8 and 16-bit', async () => {
  const one = (nodes: Node[], dims: number[], initializers: ModelSpec['initializers'] = {}, opset = 13): ModelSpec => ({
    inputs: [{ name: 'x', dims }], outputs: [{ name: 'y' }], nodes, initializers, opset,
  });
  const cases: ModelSpec[] = [
    one([node('Concat', ['x', 'x2', 'x3'], ['y'], { axis: 1 }), node('Relu', ['x'], ['x2']), node('Clip', ['x', 'lo', 'hi'], ['x3'])],
      [2, 3, 4, 5], { lo: floats([], [-1]), hi: floats([], [2]) }),
    one([node('MaxPool', ['x'], ['y'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })], [1, 3, 9, 8]),

    one([node('AveragePool', ['x'], ['y'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })], [1, 3, 9, 8]),
    one([node('AveragePool', ['x'], ['y'], { kernel_shape: [2, 2], strides: [2, 2], count_include_pad: 1, pads: [0, 0, 1, 1] })], [1, 2, 5, 5]),
    one([node('GlobalAveragePool', ['x'], ['y'])], [2, 5, 7, 7]),
    one([node('GlobalMaxPool', ['x'], ['y'])], [1, 5, 3, 3]),
    one([node('Resize', ['x', '', '', 'sizes'], ['y'], { mode: 'nearest' })], [1, 2, 3, 4], { sizes: ints([4], [1, 2, 7, 9]) }),
    one([node('Transpose', ['x'], ['t'], { perm: [0, 2, 3, 1] }), node('Slice', ['t', 's', 'e', 'ax'], ['p']), node('Pad', ['p', 'pads', 'v'], ['y'])],
      [1, 3, 4, 5], { s: ints([1], [1]), e: ints([1], [4]), ax: ints([1], [2]), pads: ints([8], [0, 1, 0, 0, 0, 0, 1, 2]), v: floats([], [0.75]) }),
    one([node('Flatten', ['x'], ['f']), node('Relu', ['f'], ['y'])], [2, 3, 2, 2]),
  ];
  for (const bits of [8, 16] as const) for (const c of cases) await bitExact(c, { bits }, [1, 2, 3, 4]);
});

test('Slice, Transpose and nearest Resize keeping the format: their integer kernels == reference, 8 and 16-bit', async () => {
  const one = (nodes: Node[], dims: number[], initializers: ModelSpec['initializers']): ModelSpec => ({
    inputs: [{ name: 'x', dims }], outputs: [{ name: 'y' }], nodes, initializers,
  });
  const cases: ModelSpec[] = [
    one([node('Resize', ['x', '', '', 'sizes'], ['y'], { mode: 'nearest' })], [1, 3, 5, 7], { sizes: ints([4], [1, 3, 11, 13]) }),
    one([node('Resize', ['x', '', 'scales'], ['y'], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' })],
      [2, 2, 4, 3], { scales: floats([4], [1, 1, 2, 2]) }),
    one([node('Transpose', ['x'], ['t'], { perm: [0, 2, 3, 1] }), node('Slice', ['t', 's', 'e', 'ax', 'st'], ['y'])],
      [1, 3, 6, 17], { s: ints([2], [1, 15]), e: ints([2], [6, 0]), ax: ints([2], [1, 2]), st: ints([2], [2, -3]) }),
    one([node('Slice', ['x', 's', 'e', 'ax'], ['y'])], [1, 4, 5, 37], { s: ints([1], [3]), e: ints([1], [36]), ax: ints([1], [3]) }),
  ];
  for (const bits of [8, 16] as const) for (const c of cases) await bitExact(c, { bits, keepMoves: true }, [1, 2, 3]);
});

test('float fallbacks with a float kernel (linear Resize, Softmax, Mul by a constant along the last axis, BatchNormalization on [N, C]) run it: within one step of the reference', async () => {
  const one = (nodes: Node[], dims: number[], initializers: ModelSpec['initializers']): ModelSpec => ({
    inputs: [{ name: 'x', dims }], outputs: [{ name: 'y' }], nodes, initializers,
  });
  const c = 5;
  const cases: ModelSpec[] = [
    one([node('Resize', ['x', '', 'scales'], ['y'], { mode: 'linear' })], [1, c, 6, 7], { scales: floats([4], [1, 1, 2.5, 3]) }),
    one([node('Softmax', ['x'], ['y'], { axis: 1 })], [2, c, 3, 4], {}),
    // Channel-wise constants become depthwise layers at load; along the last axis they stay.
    one([node('Mul', ['x', 'k'], ['y'])], [1, c, 9, 10], { k: floats([10], [0.5, -1.25, 3, 0.1, 2, 1, 0.25, -0.5, 4, 1.5]) }),
    // Likewise a BN on spatial axes; on [N, C] it stays.
    one([node('BatchNormalization', ['x', 'g', 'b', 'm', 'v'], ['y'])], [24, c], {
      g: floats([c], [1, 2, 0.5, -1, 3]), b: floats([c], [0.1, 0, -0.3, 1, 2]), m: floats([c], [0, 1, -1, 0.5, 0]), v: floats([c], [1, 4, 0.25, 2, 1]),
    }),
  ];
  for (const spec of cases) {
    const model = await loadModel(buildModel(spec));
    for (const bits of [8, 16] as const) {
      for (const seed of [1, 2]) {
        const qs = randomSpec(model, seed, { bits });
        const [fast, ref] = await Promise.all([FixedPlan.create(model, model.inputs[0].shape[0], qs), FixedPlan.create(model, model.inputs[0].shape[0], qs, { referenceOnly: true })]);
        assert.is(fast.fallbacks.length, 1);
        const feeds = feedsFor(model, qs, seed + 50);
        fast.run(feeds);
        ref.run(feeds);
        const [a, b] = [Array.from(fast.tensor('y')), Array.from(ref.tensor('y'))];
        // The kernel and the reference round float32 differently: a value on a rounding boundary
        // may land on the neighbouring integer, no farther.
        const worst = a.reduce((w, v, i) => Math.max(w, Math.abs(v - b[i])), 0);
        const same = a.filter((v, i) => v === b[i]).length / a.length;
        assert.ok(worst <= 1 && same > 0.97, `${spec.nodes[0].op} ${bits}-bit seed ${seed}: worst ${worst}, ${(100 * same).toFixed(1)} % equal`);
      }
    }
  }
});

test('max pooling kernel: windows over pads and the ceil_mode overhang, all-negative values', async () => {
  // Reading past the plane would show as a wrong maximum here.
  const model = await loadModel(buildModel({
    inputs: [{ name: 'x', dims: [2, 4, 7, 9] }], outputs: [{ name: 'y' }],
    nodes: [node('MaxPool', ['x'], ['y'], { kernel_shape: [3, 2], strides: [2, 3], pads: [0, 1, 2, 1], ceil_mode: 1, dilations: [1, 2] })],
  }));
  for (const bits of [8, 16] as const) {
    for (const [xs, ys] of [[4, 4], [4, 2], [3, 5]]) {
      const spec: QuantSpec = { tensors: { x: { bits, signed: true, scaleLog2: xs }, y: { bits, signed: true, scaleLog2: ys } }, layers: {}, biasMode: 'mma' };
      const [fast, ref] = await Promise.all([FixedPlan.create(model, 2, spec), FixedPlan.create(model, 2, spec, { referenceOnly: true })]);
      const x = { x: Float32Array.from({ length: 504 }, (_, i) => -0.01 - ((i * 37) % 101) / 16) };
      assert.equal(Array.from(fast.run(x).y), Array.from(ref.run(x).y), `${bits}-bit, scales ${xs} -> ${ys}`);
    }
  }
});

// ---- the reference itself: integer arithmetic against the float computation it stands for ----

test('reference conv: dequantized output = float conv of the dequantized operands, within the rounding', async () => {
  const model = await loadModel(buildModel(convModel({ c: 4, m: 6, h: 7, w: 7, k: [3, 3], pads: [1, 1, 1, 1] })));
  const convNode = model.graph.nodes[0];
  const params = model.inferred.compiled.get(convNode)!.params as ConvParams;
  const r = rng(5);
  for (const biasMode of ['int16', 'mma'] as const) {
    for (const seed of [11, 12, 13]) {
      const qs = randomSpec(model, seed, { bits: 8, biasMode, perChannel: true });
      const l = qs.layers[convNode.name];
      l.bias = l.bias.map(() => r(-1, 1));
      const x = qs.tensors.x;
      const feeds = feedsFor(model, qs, seed);
      // The float conv on the values the device sees, in float64.
      const xd = Float64Array.from(feeds.x, (v) => dequantizeValue(quantizeValue(v, x), x));
      const wd = Float64Array.from(l.weights, (v, i) => v * 2 ** -l.weightScaleLog2[Math.floor(i / 36)]);
      const expected = new Float64Array(6 * 49);
      conv.reference(params, [xd, wd, l.bias], [expected]);
      // An output format that does not saturate (n >= 0 still holds).
      const y = qs.tensors.y;
      y.signed = true;
      y.scaleLog2 = Math.min(x.scaleLog2 + Math.min(...l.weightScaleLog2), Math.floor(Math.log2(120 / Math.max(...expected.map(Math.abs)))));
      const out = (await FixedPlan.create(model, 1, qs, { referenceOnly: true })).run(feeds).y;
      const lsb = 2 ** -y.scaleLog2;
      const ws = 2 ** Math.min(...l.weightScaleLog2), acc = 2 ** x.scaleLog2 * ws;
      // Output rounding (half an LSB) plus the device bias: at the accumulator scale ('int16'),
      // or at the weight scale and then truncated by the input factor ('mma').
      const allowed = lsb / 2 + (biasMode === 'int16' ? 0.5 / acc : 0.5 / ws + 1 / acc) + 1e-9;
      const worst = Math.max(...out.map((v, i) => Math.abs(v - expected[i])));
      assert.ok(worst <= allowed, `${biasMode}, seed ${seed}: worst ${worst}, allowed ${allowed}`);
    }
  }
});

test('device rounding and bias rules, by hand', () => {
  // (acc + 2^(n-1)) >> n: halves go up, negative halves too (-1.5 -> -1, -2.5 -> -2).
  assert.equal([3, -3, -5, 5, -4, 7].map((a) => roundShift(a, 1)), [2, -1, -2, 3, -2, 4]);
  assert.equal([-6, -2, 2, 6, -7].map((a) => roundShift(a, 2)), [-1, 0, 1, 2, -2]);
  assert.is(roundShift(2 ** 31 - 1, 31), 1);
  assert.is(roundShift(-(2 ** 30), 31), 0);
  assert.is(roundShift(-(2 ** 30) - 1, 31), -1);
  // Float to fixed rounds half away from zero.
  assert.equal([0.5, -0.5, 1.5, -1.5, 2.49].map(roundHalfAway), [1, -1, 2, -2, 2]);
  assert.is(quantizeValue(-0.75, { bits: 8, signed: false, scaleLog2: 2 }), 0);
  assert.is(quantizeValue(100, { bits: 8, signed: true, scaleLog2: 2 }), 127);
  // MMA bias: bias at the weight scale times the input factor f = 2^in through biasA * biasB.
  assert.equal(deviceBias(1.5, 3, 4, 8, 'mma', false), { value: 24 * 8, biasA: 24, biasB: 8 });
  // f = 512 > 127 (signed input): biasA = clamp(trunc(sat16(6400 * 512) / 127)) = clamp(258) = 127.
  assert.equal(deviceBias(100, 9, 6, 8, 'mma', true), { value: 127 * 127, biasA: 127, biasB: 127 });
  assert.equal(deviceBias(0.5, 9, 6, 8, 'mma', false), { value: Math.trunc(16384 / 255) * 255, biasA: 64, biasB: 255 });
  assert.is(deviceBias(1.5, -2, 4, 8, 'mma', false).value, 6);
  assert.is(deviceBias(-1.3, 3, 4, 8, 'int16', false).value, -166);
  assert.is(deviceBias(1e9, 3, 4, 16, 'mma', false).value, 2 ** 31 - 1);
  // Saturation bounds with a fused Clip(0, 6) at scale 2^5, and the eltwise factors.
  assert.equal(saturationBounds({ bits: 8, signed: true, scaleLog2: 5 }, { min: 0, max: 6 }), [0, 127]);
  assert.equal(saturationBounds({ bits: 8, signed: false, scaleLog2: 4 }, { min: 0, max: 6 }), [0, 96]);
  assert.equal([rescaleFactor(3, 9), rescaleFactor(9, 9), rescaleFactor(10, 9)], [64, 1, 0]);
  // 1/count with 8 (12) significant bits; a 33x33 global pool keeps a usable multiplier.
  assert.equal([avgPoolMultiplier(49, 8), avgPoolMultiplier(4, 8), avgPoolMultiplier(49, 16), avgPoolMultiplier(1089, 8)],
    [{ m: 167, shift: 13 }, { m: 256, shift: 10 }, { m: 2675, shift: 17 }, { m: 241, shift: 18 }]);
});

test.run();

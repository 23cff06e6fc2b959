/**
 * Every WASM float kernel against its op's TypeScript reference, on generated random cases:
 * the same model run by a FloatPlan with `referenceOnly` and by one with kernels (and fusion).
 * Tolerance: max |kernel - reference| <= 1e-5 * max(1, max |reference|) per output (float32
 * accumulation in another order against the references' float64 sums).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { numel, type Tensor } from '../sdk/graph/ir.js';
import { loadModel } from '../sdk/index.js';
import { conv as convOp, winograd, type ConvParams } from '../sdk/ops/conv.js';
import { buildModel, diff, floats, ints, node, randomArray, randomConvTranspose, randomTensor, rng, type ModelSpec } from './helpers.js';

const TOL = 1e-5;

interface Check {
  /** Ops that must run as WASM kernels in the kernel plan. */
  kernels?: string[];
  /** Expected fusions: producer op -> fused activation op. */
  fused?: Record<string, string>;
  /** Input value range. */
  range?: number;
  seed?: number;
}

/** Run `spec` both ways; returns the measured max |diff| / max(1, max |ref|). */
async function check(label: string, spec: ModelSpec, opts: Check = {}): Promise<number> {
  const model = await loadModel(buildModel(spec));
  const range = opts.range ?? 2;
  const feeds = Object.fromEntries(model.inputs.map((v, i) => [v.name, randomArray(numel(v.shape), (opts.seed ?? 1) + i, -range, range)]));
  const batch = model.inputs[0].shape[0];
  const ref = (await model.floatPlan(batch, { referenceOnly: true })).plan.run(feeds);
  const { plan } = await model.floatPlan(batch);
  const steps = plan.describe();
  for (const op of opts.kernels ?? []) {
    const s = steps.filter((x) => x.op === op);
    assert.ok(s.length > 0 && s.every((x) => x.kernel), `${label}: ${op} must run as a kernel (${JSON.stringify(steps)})`);
  }
  for (const [op, act] of Object.entries(opts.fused ?? {})) {
    assert.ok(steps.some((x) => x.op === op && x.fused === act), `${label}: ${act} must be fused into ${op} (${JSON.stringify(steps)})`);
  }
  const out = plan.run(feeds);
  let worst = 0;
  for (const k of Object.keys(ref)) {
    const d = diff(out[k], ref[k]);
    const rel = d.max / Math.max(1, d.ref);
    assert.ok(Number.isFinite(d.max), `${label}: output ${k} is not finite`);
    assert.ok(rel <= TOL, `${label}: output ${k} differs by ${d.max} (max |ref| ${d.ref})`);
    worst = Math.max(worst, rel);
  }
  return worst;
}

type R = ReturnType<typeof rng>;
const int = (r: R, lo: number, hi: number) => Math.floor(r(lo, hi + 1));
const pick = <T>(r: R, xs: T[]) => xs[int(r, 0, xs.length - 1)];

interface ConvCase {
  n: number; c: number; m: number; h: number; w: number; group: number;
  k: [number, number]; s: [number, number]; d: [number, number]; pads: number[]; bias: boolean;
}

function convSpec(cc: ConvCase, seed: number, after?: { op: string; attrs?: Record<string, number>; inputs?: Record<string, Tensor> }): ModelSpec {
  const init: Record<string, Tensor> = { w: randomTensor([cc.m, cc.c / cc.group, ...cc.k], seed, -1, 1) };
  if (cc.bias) init.b = randomTensor([cc.m], seed + 1);
  const conv = node('Conv', ['x', 'w', ...(cc.bias ? ['b'] : [])], [after ? 't' : 'y'], {
    kernel_shape: cc.k, strides: cc.s, dilations: cc.d, pads: cc.pads, group: cc.group,
  });
  const nodes = [conv];
  if (after) {
    nodes.push(node(after.op, ['t', ...Object.keys(after.inputs ?? {})], ['y'], after.attrs ?? {}));
    Object.assign(init, after.inputs ?? {});
  }
  return { inputs: [{ name: 'x', dims: [cc.n, cc.c, cc.h, cc.w] }], outputs: [{ name: 'y' }], nodes, initializers: init };
}

/** A random conv of a kind; sizes are drawn until the output is non-empty. */
function randomConv(r: R, kind: 'pointwise' | 'general' | 'dw3x3s1' | 'dw3x3s2' | 'dw5x5s1' | 'dw' | 'dwMultiplier'): ConvCase {
  for (;;) {
    const dwKind = kind.startsWith('dw');
    const group = dwKind ? int(r, 1, 9) : kind === 'general' ? int(r, 1, 3) : int(r, 1, 2);
    const c = dwKind ? group : group * int(r, 1, 9);
    const m = kind === 'dwMultiplier' ? 2 * c : dwKind ? c : group * int(r, 1, 11);
    let k: [number, number] = [int(r, 1, 5), int(r, 1, 5)];
    let s: [number, number] = [int(r, 1, 3), int(r, 1, 3)];
    let d: [number, number] = [int(r, 1, 3), int(r, 1, 3)];
    let pads = [0, 0, 0, 0].map(() => int(r, 0, 2));
    if (kind === 'pointwise') { k = [1, 1]; s = [1, 1]; d = [1, 1]; pads = [0, 0, 0, 0]; }
    if (kind === 'dw3x3s1') { k = [3, 3]; s = [1, 1]; const dd = int(r, 1, 3); d = [dd, dd]; pads = pads.map(() => int(r, 0, dd + 1)); }
    if (kind === 'dw3x3s2') { k = [3, 3]; s = [2, 2]; d = [1, 1]; pads = pads.map(() => int(r, 0, 1)); }
    if (kind === 'dw5x5s1') { k = [5, 5]; s = [1, 1]; d = [1, 1]; pads = pads.map(() => int(r, 0, 3)); }
    const h = int(r, 1, 23), w = int(r, 1, 23);
    const oh = Math.floor((h + pads[0] + pads[2] - (k[0] - 1) * d[0] - 1) / s[0]) + 1;
    const ow = Math.floor((w + pads[1] + pads[3] - (k[1] - 1) * d[1] - 1) / s[1]) + 1;
    if (oh > 0 && ow > 0) return { n: int(r, 1, 2), c, m, h, w, group, k, s, d, pads, bias: r() < 0.7 };
  }
}

for (const kind of ['pointwise', 'general', 'dw3x3s1', 'dw3x3s2', 'dw5x5s1', 'dw', 'dwMultiplier'] as const) {
  test(`Conv kernels (${kind}) equal the reference on random shapes`, async () => {
    const r = rng(kind.length * 101);
    let worst = 0;
    for (let i = 0; i < 14; i++) {
      const cc = randomConv(r, kind);
      worst = Math.max(worst, await check(`${kind} ${JSON.stringify(cc)}`, convSpec(cc, i), { kernels: ['Conv'], seed: i }));
    }
    console.log(`  Conv ${kind}: worst ${worst.toExponential(2)}`);
  });
}

test('Conv kernels: wide rows, many channels, 1-D convs', async () => {
  const cases: ConvCase[] = [
    { n: 1, c: 37, m: 29, h: 9, w: 41, group: 1, k: [1, 1], s: [1, 1], d: [1, 1], pads: [0, 0, 0, 0], bias: true },
    { n: 1, c: 300, m: 13, h: 3, w: 5, group: 1, k: [1, 1], s: [1, 1], d: [1, 1], pads: [0, 0, 0, 0], bias: true },
    { n: 2, c: 24, m: 24, h: 30, w: 57, group: 24, k: [3, 3], s: [1, 1], d: [1, 1], pads: [1, 1, 1, 1], bias: true },
    { n: 1, c: 16, m: 16, h: 31, w: 66, group: 16, k: [3, 3], s: [2, 2], d: [1, 1], pads: [0, 1, 1, 0], bias: false },
    { n: 1, c: 7, m: 7, h: 20, w: 33, group: 7, k: [3, 3], s: [1, 1], d: [4, 4], pads: [4, 4, 4, 4], bias: true },
    { n: 1, c: 5, m: 11, h: 40, w: 37, group: 1, k: [3, 3], s: [2, 2], d: [1, 1], pads: [1, 1, 1, 1], bias: true },
    // Stride 1: tiles inside the image read it in place, the others gather (pads, row ends).
    { n: 2, c: 7, m: 13, h: 12, w: 45, group: 1, k: [3, 3], s: [1, 1], d: [1, 1], pads: [1, 1, 1, 1], bias: true },
    { n: 1, c: 6, m: 10, h: 9, w: 70, group: 2, k: [5, 3], s: [1, 1], d: [2, 1], pads: [4, 0, 2, 3], bias: false },
    { n: 1, c: 16, m: 3, h: 20, w: 33, group: 1, k: [7, 7], s: [1, 1], d: [1, 1], pads: [3, 3, 3, 3], bias: true },
    // Depthwise 5x5 stride 1: 8 outputs a step, rows ending at every lane count.
    { n: 2, c: 6, m: 6, h: 14, w: 71, group: 6, k: [5, 5], s: [1, 1], d: [1, 1], pads: [2, 2, 2, 2], bias: true },
    { n: 1, c: 3, m: 3, h: 9, w: 12, group: 3, k: [5, 5], s: [1, 1], d: [1, 1], pads: [0, 1, 3, 0], bias: false },
  ];
  for (const [i, cc] of cases.entries()) await check(JSON.stringify(cc), convSpec(cc, i), { kernels: ['Conv'] });
  const conv1d: ModelSpec = {
    inputs: [{ name: 'x', dims: [2, 5, 19] }], outputs: [{ name: 'y' }],
    nodes: [node('Conv', ['x', 'w', 'b'], ['y'], { kernel_shape: [3], strides: [2], pads: [1, 2], dilations: [2] })],
    initializers: { w: randomTensor([6, 5, 3], 3), b: randomTensor([6], 4) },
  };
  await check('conv1d', conv1d, { kernels: ['Conv'] });
});

test('Winograd F(2x2, 3x3) kernel (3x3 stride 1, 16+ channels) equals the reference: random sizes, pads, batches, fused activations', async () => {
  const r = rng(2023);
  let worst = 0;
  for (let i = 0; i < 12; i++) {
    const pads = [0, 0, 0, 0].map(() => int(r, 0, 2));
    const cc: ConvCase = {
      n: int(r, 1, 2), c: int(r, 16, 40), m: int(r, 16, 37), h: int(r, 1, 19), w: int(r, 1, 45), group: 1,
      k: [3, 3], s: [1, 1], d: [1, 1], pads, bias: r() < 0.7,
    };
    if (cc.h + pads[0] + pads[2] < 3 || cc.w + pads[1] + pads[3] < 3) continue;
    const model = await loadModel(buildModel(convSpec(cc, i)));
    const p = model.inferred.compiled.get(model.graph.nodes[0])!.params as ConvParams;
    assert.ok(winograd(p), `${JSON.stringify(cc)} runs by Winograd`);
    const after = pick(r, [undefined, { op: 'Relu' }, { op: 'HardSwish' }]);
    worst = Math.max(worst, await check(`Winograd ${JSON.stringify(cc)} ${after?.op ?? ''}`, convSpec(cc, i, after), { kernels: ['Conv'], seed: i, range: 3 }));
  }
  // SiLU fused, a wide image (several passes of tiles per row), and a ConvTranspose 3x3/1 whose
  // pads past the kernel make negative conv pads.
  const wide: ConvCase = { n: 1, c: 20, m: 17, h: 7, w: 300, group: 1, k: [3, 3], s: [1, 1], d: [1, 1], pads: [1, 1, 1, 1], bias: true };
  worst = Math.max(worst, await check('Winograd wide + SiLU', siluAfter(convSpec(wide, 5), false), { kernels: ['Conv'], fused: { Conv: 'Sigmoid+Mul' } }));
  const ct: ModelSpec = {
    inputs: [{ name: 'x', dims: [1, 16, 12, 13] }], outputs: [{ name: 'y' }],
    initializers: { w: randomTensor([16, 18, 3, 3], 7, -1, 1), b: randomTensor([18], 8) },
    nodes: [node('ConvTranspose', ['x', 'w', 'b'], ['y'], { kernel_shape: [3, 3], pads: [3, 1, 2, 4] })],
  };
  worst = Math.max(worst, await check('ConvTranspose 3x3/1 by Winograd', ct, { kernels: ['ConvTranspose'] }));
  assert.ok(!winograd(convOp.compile({ node: node('Conv', ['x', 'w'], ['y'], { kernel_shape: [3, 3], group: 2 }), opset: 13, inputs: [
    { dtype: 'float32', shape: [1, 32, 8, 8] }, { dtype: 'float32', shape: [32, 16, 3, 3] },
  ] }).params), 'grouped convs run directly');
  console.log(`  Winograd: worst ${worst.toExponential(2)}`);
});

test('ConvTranspose kernel equals the reference on random shapes, strides, dilations, groups, pads', async () => {
  const r = rng(77);
  let worst = 0;
  for (let i = 0; i < 40; i++) {
    const spec = randomConvTranspose(r, i);
    worst = Math.max(worst, await check(`ConvTranspose ${JSON.stringify(spec.nodes[0].attrs)} x [${spec.inputs[0].dims}]`, spec, { kernels: ['ConvTranspose'], seed: i }));
  }
  console.log(`  ConvTranspose: worst ${worst.toExponential(2)}`);
});

test("ConvTranspose kernel: the shared models' kinds (2x2/2, 3x3/2, 7x7/1 with a fused Relu, depthwise, 1-D)", async () => {
  const one = (x: number[], w: number[], attrs: Record<string, number | number[]>, act?: string): ModelSpec => ({
    inputs: [{ name: 'x', dims: x }], outputs: [{ name: 'y' }],
    initializers: { w: randomTensor(w, 5, -1, 1), b: randomTensor([w[1] * ((attrs.group as number) ?? 1)], 6) },
    nodes: act ? [node('ConvTranspose', ['x', 'w', 'b'], ['t'], attrs), node(act, ['t'], ['y'])] : [node('ConvTranspose', ['x', 'w', 'b'], ['y'], attrs)],
  });
  await check('2x2/2', one([1, 24, 15, 20], [24, 24, 2, 2], { kernel_shape: [2, 2], strides: [2, 2] }), { kernels: ['ConvTranspose'] });
  await check('3x3/2', one([1, 32, 16, 16], [32, 16, 3, 3], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 0, 0], output_padding: [0, 0] }), { kernels: ['ConvTranspose'] });
  await check('7x7/1 + Relu', one([1, 16, 30, 30], [16, 8, 7, 7], { kernel_shape: [7, 7] }, 'Relu'), { kernels: ['ConvTranspose'], fused: { ConvTranspose: 'Relu' } });
  await check('depthwise 3x3/1, pads past the kernel', one([1, 6, 12, 12], [6, 1, 3, 3], { kernel_shape: [3, 3], group: 6, pads: [3, 4, 3, 4] }), { kernels: ['ConvTranspose'] });
  await check('depthwise 3x3/2', one([2, 6, 9, 7], [6, 1, 3, 3], { kernel_shape: [3, 3], group: 6, strides: [2, 2], pads: [1, 1, 1, 1] }), { kernels: ['ConvTranspose'] });
  await check('1-D', one([2, 5, 17], [5, 3, 4], { kernel_shape: [4], strides: [3], pads: [1, 2] }), { kernels: ['ConvTranspose'] });
});

const ACTIVATIONS: { op: string; attrs?: Record<string, number>; inputs?: Record<string, Tensor>; opset?: number }[] = [
  { op: 'Relu' },
  { op: 'Clip', inputs: { lo: floats([], [0]), hi: floats([], [6]) } },
  { op: 'Clip', inputs: { lo: floats([], [-0.5]), hi: floats([], [0.25]) } },
  { op: 'LeakyRelu', attrs: { alpha: 0.1 } },
  { op: 'HardSigmoid', attrs: { alpha: 0.25, beta: 0.4 } },
  { op: 'HardSwish' },
  { op: 'Sigmoid' },
  { op: 'Tanh' },
];

test('activation kernels equal the reference, from tiny to saturating inputs', async () => {
  for (const a of ACTIVATIONS) {
    for (const [n, range] of [[1, 1], [7, 3], [1037, 30]] as const) {
      const spec: ModelSpec = {
        inputs: [{ name: 'x', dims: [n] }], outputs: [{ name: 'y' }],
        nodes: [node(a.op, ['x', ...Object.keys(a.inputs ?? {})], ['y'], a.attrs ?? {})],
        initializers: a.inputs,
      };
      await check(`${a.op} n=${n}`, spec, { kernels: [a.op], range });
    }
  }
  // Opset-6 Clip carries its bounds as attributes.
  const old: ModelSpec = {
    inputs: [{ name: 'x', dims: [2, 9] }], outputs: [{ name: 'y' }], opset: 9,
    nodes: [node('Clip', ['x'], ['y'], { min: -0.5, max: 1.5 })],
  };
  await check('Clip opset 9', old, { kernels: ['Clip'] });
});

test('activations are fused into Conv, Gemm and Add and give the unfused result, bit for bit', async () => {
  const r = rng(77);
  for (const [i, a] of ACTIVATIONS.entries()) {
    const cc = randomConv(r, pick(r, ['pointwise', 'general', 'dw3x3s1', 'dw3x3s2', 'dw'] as const));
    const spec = convSpec(cc, i, a);
    await check(`Conv+${a.op}`, spec, { kernels: ['Conv'], fused: { Conv: a.op } });
    await sameBits(`Conv+${a.op}`, spec, ['t']);
  }
  const gemm: ModelSpec = {
    inputs: [{ name: 'a', dims: [3, 20] }], outputs: [{ name: 'y' }],
    nodes: [node('Gemm', ['a', 'b', 'c'], ['t'], { transB: 1 }), node('Clip', ['t', 'lo', 'hi'], ['y'])],
    initializers: { b: randomTensor([11, 20], 1), c: randomTensor([11], 2), lo: floats([], [0]), hi: floats([], [1]) },
  };
  await check('Gemm+Clip', gemm, { kernels: ['Gemm'], fused: { Gemm: 'Clip' } });
  const add: ModelSpec = {
    inputs: [{ name: 'a', dims: [2, 3, 5, 7] }, { name: 'b', dims: [2, 3, 5, 7] }], outputs: [{ name: 'y' }],
    nodes: [node('Add', ['a', 'b'], ['t']), node('Relu', ['t'], ['y'])],
  };
  await check('Add+Relu', add, { kernels: ['Add'], fused: { Add: 'Relu' } });
});

/** The plan with fusion gives the same bits as one that keeps (so does not fuse away) `unfused`. */
async function sameBits(label: string, spec: ModelSpec, unfused: string[]): Promise<void> {
  const model = await loadModel(buildModel(spec));
  const feeds = Object.fromEntries(model.inputs.map((v, i) => [v.name, randomArray(numel(v.shape), 40 + i, -6, 6)]));
  const fused = (await model.floatPlan(model.inputs[0].shape[0])).plan;
  const plain = (await model.floatPlan(model.inputs[0].shape[0], { observe: unfused })).plan;
  assert.ok(fused.describe().some((s) => s.fused) && plain.describe().every((s) => !s.fused), `${label}: fused in one plan only`);
  const [a, b] = [fused.run(feeds), plain.run(feeds)];
  for (const k of Object.keys(a)) assert.equal(Array.from(a[k]), Array.from(b[k]), `${label}: output ${k}`);
}

/** t = producer, y = Mul(t, Sigmoid(t)) (operands in either order). */
function siluAfter(spec: ModelSpec, swap: boolean): ModelSpec {
  const last = spec.nodes[spec.nodes.length - 1];
  last.outputs = ['t'];
  return { ...spec, nodes: [...spec.nodes, node('Sigmoid', ['t'], ['u']), node('Mul', swap ? ['u', 't'] : ['t', 'u'], ['y'])] };
}

test('SiLU (x * Sigmoid(x)) is fused into its producer, bit for bit, unless a tensor it removes is read', async () => {
  const r = rng(19);
  for (let i = 0; i < 8; i++) {
    const cc = randomConv(r, pick(r, ['pointwise', 'general', 'dw3x3s1', 'dw3x3s2', 'dw'] as const));
    const spec = siluAfter(convSpec(cc, i), i % 2 === 1);
    await check(`Conv+SiLU ${JSON.stringify(cc)}`, spec, { kernels: ['Conv'], fused: { Conv: 'Sigmoid+Mul' } });
    await sameBits(`Conv+SiLU ${i}`, spec, ['t', 'u']);
  }
  const add = siluAfter({
    inputs: [{ name: 'a', dims: [2, 3, 5, 7] }, { name: 'b', dims: [2, 3, 5, 7] }], outputs: [{ name: 'y' }],
    nodes: [node('Add', ['a', 'b'], ['y'])],
  }, false);
  await check('Add+SiLU', add, { kernels: ['Add'], fused: { Add: 'Sigmoid+Mul' } });
  // A conv with runtime weights has no kernel: the fused nodes' references run after it.
  const runtimeWeights: ModelSpec = siluAfter({
    inputs: [{ name: 'x', dims: [1, 3, 6, 6] }, { name: 'w', dims: [4, 3, 3, 3] }], outputs: [{ name: 'y' }],
    nodes: [node('Conv', ['x', 'w'], ['y'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })],
  }, true);
  await check('Conv (runtime weights)+SiLU', runtimeWeights, { fused: { Conv: 'Sigmoid+Mul' } });
  const cc: ConvCase = { n: 1, c: 3, m: 5, h: 9, w: 9, group: 1, k: [3, 3], s: [1, 1], d: [1, 1], pads: [1, 1, 1, 1], bias: true };
  const notFused = async (label: string, spec: ModelSpec, options = {}) => {
    const model = await loadModel(buildModel(spec));
    assert.ok((await model.floatPlan(1, options)).plan.describe().every((s) => !s.fused), label);
    await check(label, spec, { kernels: ['Conv'] });
  };
  // The Sigmoid's output is also a graph output, or observed; the conv output has a third reader.
  const sigOut = siluAfter(convSpec(cc, 1), false);
  sigOut.outputs = [{ name: 'y' }, { name: 'u' }];
  await notFused('Sigmoid output read outside', sigOut);
  await notFused('Sigmoid output observed', siluAfter(convSpec(cc, 2), false), { observe: ['u'] });
  const third = siluAfter(convSpec(cc, 4), false);
  third.nodes.push(node('Add', ['t', 'y'], ['z']));
  third.outputs = [{ name: 'z' }];
  await notFused('third reader', third);
});

test('fusion respects readers, graph outputs and `keep`', async () => {
  const cc: ConvCase = { n: 1, c: 3, m: 5, h: 9, w: 9, group: 1, k: [3, 3], s: [1, 1], d: [1, 1], pads: [1, 1, 1, 1], bias: true };
  // The conv output also feeds an Add: no fusion.
  const shared = convSpec(cc, 1, { op: 'Relu' });
  shared.nodes.push(node('Add', ['t', 'y'], ['z']));
  shared.outputs = [{ name: 'z' }];
  await check('shared reader', shared, { kernels: ['Conv'] });
  const model = await loadModel(buildModel(shared));
  assert.ok((await model.floatPlan(1)).plan.describe().every((s) => !s.fused));
  // The conv output is a graph output: no fusion, both outputs right.
  const both = convSpec(cc, 2, { op: 'Relu' });
  both.outputs = [{ name: 't' }, { name: 'y' }];
  await check('graph output', both, { kernels: ['Conv', 'Relu'] });
  // Kept for calibration: no fusion, and the kept tensor holds the conv output.
  const kept = await loadModel(buildModel(convSpec(cc, 3, { op: 'Relu' })));
  const x = randomArray(numel(kept.inputs[0].shape), 9);
  const refPlan = (await kept.floatPlan(1, { referenceOnly: true, keep: ['t'] })).plan;
  const { plan } = await kept.floatPlan(1, { keep: ['t'] });
  assert.ok(plan.describe().every((s) => !s.fused));
  const y = plan.run({ x }).y;
  const yRef = refPlan.run({ x }).y;
  const t = diff(plan.view('t'), refPlan.view('t'));
  assert.ok(t.max <= TOL * Math.max(1, t.ref) && t.ref > 0, `kept tensor ${t.max}`);
  assert.ok(diff(y, yRef).max <= TOL * Math.max(1, t.ref));
  assert.ok(Array.from(plan.view('t')).some((v) => v < 0), 'the kept tensor is the conv output, before Relu');
});

test('Gemm and MatMul kernels: transposes, alpha/beta, bias shapes, batched A', async () => {
  const r = rng(5);
  for (let i = 0; i < 12; i++) {
    const m = int(r, 1, 9), k = int(r, 1, 40), n = int(r, 1, 37);
    const transB = int(r, 0, 1);
    const cShape = pick(r, [[n], [1, n], [1], []]);
    const spec: ModelSpec = {
      inputs: [{ name: 'a', dims: [m, k] }], outputs: [{ name: 'y' }],
      nodes: [node('Gemm', ['a', 'b', 'c'], ['y'], { transB, alpha: { float: r(0.5, 2) }, beta: { float: r(0.5, 2) } })],
      initializers: { b: randomTensor(transB ? [n, k] : [k, n], i), c: randomTensor(cShape, i + 50) },
    };
    await check(`Gemm m${m} k${k} n${n} transB${transB} C[${cShape}]`, spec, { kernels: ['Gemm'] });
  }
  // Forms the kernel does not take run the reference: C per row, transposed A.
  const perRow: ModelSpec = {
    inputs: [{ name: 'a', dims: [4, 6] }], outputs: [{ name: 'y' }],
    nodes: [node('Gemm', ['a', 'b', 'c'], ['y'], { transA: 1 })],
    initializers: { b: randomTensor([4, 5], 1), c: randomTensor([6, 5], 2) },
  };
  await check('Gemm transA, C [m,n]', perRow);
  for (const [a, b] of [[[1, 1280], [1280, 1000]], [[2, 3, 5, 17], [17, 9]], [[7], [7, 3]]]) {
    const spec: ModelSpec = {
      inputs: [{ name: 'a', dims: a }], outputs: [{ name: 'y' }],
      nodes: [node('MatMul', ['a', 'b'], ['y'])],
      initializers: { b: randomTensor(b, 3) },
    };
    await check(`MatMul [${a}]x[${b}]`, spec, { kernels: ['MatMul'] });
  }
  // Two activations (attention), batch dimensions broadcast either way, 1-D operands, a fused Relu.
  const cases: [number[], number[]][] = [[[2, 3, 9, 20], [2, 3, 20, 17]], [[4, 5, 8], [8, 24]], [[6, 33], [3, 1, 33, 7]], [[11], [2, 11, 9]], [[1, 40, 13], [13, 1]]];
  for (const [i, [a, b]] of cases.entries()) {
    const spec: ModelSpec = {
      inputs: [{ name: 'a', dims: a }, { name: 'b', dims: b }], outputs: [{ name: 'y' }],
      nodes: i === 1 ? [node('MatMul', ['a', 'b'], ['t']), node('Relu', ['t'], ['y'])] : [node('MatMul', ['a', 'b'], ['y'])],
      initializers: {},
    };
    await check(`MatMul of activations [${a}]x[${b}]`, spec, { kernels: ['MatMul'], seed: i, ...(i === 1 ? { fused: { MatMul: 'Relu' } } : {}) });
  }
});

test('pooling kernels equal the reference: windows, strides, pads, dilations, ceil_mode, count_include_pad', async () => {
  const r = rng(11);
  for (let i = 0; i < 40; i++) {
    const isMax = i % 2 === 0;
    const kh = int(r, 1, 5), kw = int(r, 1, 5);
    const s = [int(r, 1, 3), int(r, 1, 3)];
    const d = isMax ? [int(r, 1, 2), int(r, 1, 2)] : [1, 1];
    const pads = [Math.min(int(r, 0, 2), kh - 1), Math.min(int(r, 0, 2), kw - 1), Math.min(int(r, 0, 2), kh - 1), Math.min(int(r, 0, 2), kw - 1)];
    const h = int(r, (kh - 1) * d[0] + 1, 24), w = int(r, (kw - 1) * d[1] + 1, 24);
    const attrs: Record<string, number | number[]> = { kernel_shape: [kh, kw], strides: s, pads, ceil_mode: int(r, 0, 1) };
    if (isMax) attrs.dilations = d;
    else attrs.count_include_pad = int(r, 0, 1);
    const spec: ModelSpec = {
      inputs: [{ name: 'x', dims: [int(r, 1, 2), int(r, 1, 5), h, w] }], outputs: [{ name: 'y' }],
      nodes: [node(isMax ? 'MaxPool' : 'AveragePool', ['x'], ['y'], attrs)],
    };
    await check(`${isMax ? 'Max' : 'Average'}Pool ${JSON.stringify(attrs)} ${h}x${w}`, spec, { kernels: [isMax ? 'MaxPool' : 'AveragePool'] });
  }
  for (const op of ['GlobalAveragePool', 'GlobalMaxPool']) {
    for (const dims of [[1, 3, 1, 1], [2, 5, 7, 7], [1, 17, 13, 31], [2, 4, 9]]) {
      const spec: ModelSpec = { inputs: [{ name: 'x', dims }], outputs: [{ name: 'y' }], nodes: [node(op, ['x'], ['y'])] };
      await check(`${op} [${dims}]`, spec, { kernels: [op] });
    }
  }
});

/** A random shape broadcastable to `out`: leading dims dropped, some dims set to 1. */
function broadcastable(r: R, out: number[]): number[] {
  const drop = int(r, 0, out.length);
  return out.slice(drop).map((d) => (r() < 0.4 ? 1 : d));
}

test('binary kernels equal the reference: same shape, scalar, per-channel and random broadcasts', async () => {
  const r = rng(21);
  const ops = ['Add', 'Sub', 'Mul', 'Div', 'Max', 'Min'];
  const fixed: [number[], number[]][] = [
    [[2, 6, 5, 7], [2, 6, 5, 7]], [[2, 6, 5, 7], [1]], [[1], [3, 4, 5]], [[2, 6, 5, 7], [1, 6, 1, 1]], [[2, 6, 5, 7], [6, 1, 1]],
    [[1, 6, 1, 1], [2, 6, 5, 7]], [[3, 1, 5], [1, 4, 1]], [[4, 1], [3]], [[], []],
  ];
  for (const [a, b] of fixed) {
    for (const op of ops) {
      const spec: ModelSpec = {
        inputs: [{ name: 'a', dims: a }, { name: 'b', dims: b }], outputs: [{ name: 'y' }], nodes: [node(op, ['a', 'b'], ['y'])],
      };
      await check(`${op} [${a}] [${b}]`, spec, { kernels: [op] });
    }
  }
  for (let i = 0; i < 30; i++) {
    const out = Array.from({ length: int(r, 1, 5) }, () => int(r, 1, 6));
    const [a, b] = [broadcastable(r, out), broadcastable(r, out)];
    const op = pick(r, ops);
    const constB = r() < 0.3;
    const spec: ModelSpec = {
      inputs: [{ name: 'a', dims: a }, ...(constB ? [] : [{ name: 'b', dims: b }])], outputs: [{ name: 'y' }],
      nodes: [node(op, ['a', 'b'], ['y'])],
      initializers: constB ? { b: randomTensor(b, i) } : {},
    };
    // More than four loops after collapsing falls back to the reference: only check results.
    await check(`${op} [${a}] [${b}]${constB ? ' const' : ''}`, spec, { kernels: out.length <= 4 ? [op] : [] });
  }
  for (const slope of [[1], [6, 1, 1], [1, 6, 1, 1]]) {
    const spec: ModelSpec = {
      inputs: [{ name: 'x', dims: [2, 6, 5, 7] }], outputs: [{ name: 'y' }],
      nodes: [node('PRelu', ['x', 's'], ['y'])], initializers: { s: randomTensor(slope, 4) },
    };
    await check(`PRelu slope [${slope}]`, spec, { kernels: ['PRelu'] });
  }
});

test('Resize / Upsample kernels equal the reference: nearest and linear, every coordinate mode, up and down', async () => {
  const modes = ['half_pixel', 'pytorch_half_pixel', 'align_corners', 'asymmetric', 'tf_half_pixel_for_nn'];
  const nearest = ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil'];
  const r = rng(31);
  for (let i = 0; i < 24; i++) {
    const linear = i % 2 === 1;
    const coord = pick(r, linear ? modes.filter((m) => m !== 'tf_half_pixel_for_nn') : modes);
    const h = int(r, 1, 13), w = int(r, 1, 13);
    const useSizes = r() < 0.5;
    const sizes = [2, 3, int(r, 1, 30), int(r, 1, 30)];
    const scales = [1, 1, pick(r, [0.5, 1.5, 2, 3, 0.75]), pick(r, [0.5, 2, 2.5, 4, 1])];
    const attrs: Record<string, string> = { mode: linear ? 'linear' : 'nearest', coordinate_transformation_mode: coord };
    if (!linear) attrs.nearest_mode = pick(r, nearest);
    const spec: ModelSpec = {
      inputs: [{ name: 'x', dims: [2, 3, h, w] }], outputs: [{ name: 'y' }],
      nodes: [node('Resize', ['x', '', useSizes ? '' : 'scales', ...(useSizes ? ['sizes'] : [])], ['y'], attrs)],
      initializers: useSizes ? { sizes: ints([4], sizes) } : { scales: floats([4], scales) },
    };
    if (!useSizes && scales.slice(2).some((s, a) => Math.floor([h, w][a] * s) < 1)) continue;
    await check(`Resize ${JSON.stringify(attrs)} ${h}x${w} ${useSizes ? `sizes ${sizes}` : `scales ${scales}`}`, spec, { kernels: ['Resize'] });
  }
  for (const mode of ['nearest', 'linear']) {
    const spec: ModelSpec = {
      inputs: [{ name: 'x', dims: [1, 4, 5, 6] }], outputs: [{ name: 'y' }], opset: 9,
      nodes: [node('Upsample', ['x', 'scales'], ['y'], { mode })], initializers: { scales: floats([4], [1, 1, 2, 3]) },
    };
    await check(`Upsample ${mode}`, spec, { kernels: ['Upsample'] });
  }
});

test('BatchNormalization not folded (as the depthwise layer it becomes on 1-2 spatial axes, as its own kernel on [N, C]) equals the reference', async () => {
  for (const dims of [[2, 5, 7, 9], [1, 3, 11], [1, 4]]) {
    const c = dims[1];
    const spec: ModelSpec = {
      inputs: [{ name: 'x', dims }], outputs: [{ name: 'y' }],
      nodes: [node('BatchNormalization', ['x', 'g', 'b', 'm', 'v'], ['y'], { epsilon: 1e-3 })],
      initializers: { g: randomTensor([c], 1), b: randomTensor([c], 2), m: randomTensor([c], 3), v: randomTensor([c], 4, 0.1, 3) },
    };
    await check(`BatchNormalization [${dims}]`, spec, { kernels: [dims.length > 2 ? 'Conv' : 'BatchNormalization'], range: 5 });
  }
});

test('Softmax and LogSoftmax kernels equal the reference: every axis, long rows, opset 11 flattening, wide ranges', async () => {
  const one = (op: string, dims: number[], axis: number, opset = 13): ModelSpec => ({
    inputs: [{ name: 'x', dims }], outputs: [{ name: 'y' }], nodes: [node(op, ['x'], ['y'], { axis })], opset,
  });
  for (const op of ['Softmax', 'LogSoftmax']) {
    for (const [dims, axis] of [[[2, 6625], -1], [[1, 40, 40], 2], [[2, 7, 3, 5], 1], [[1, 3, 2, 17], 2], [[3, 5, 2], 1], [[2, 3, 4], 0]] as [number[], number][]) {
      await check(`${op} [${dims}] axis ${axis}`, one(op, dims, axis), { kernels: [op], range: 30 });
    }
    await check(`${op} opset 11`, one(op, [2, 3, 4, 5], 1, 11), { kernels: [op], range: 8 });
  }
});

test('Transpose and Slice kernels (strided copies) equal the reference: permutations, steps, negative steps', async () => {
  const r = rng(41);
  for (let i = 0; i < 20; i++) {
    const rank = int(r, 1, 5);
    const dims = Array.from({ length: rank }, () => int(r, 1, 7));
    const perm = [...Array(rank).keys()].sort(() => r() - 0.5);
    const spec: ModelSpec = {
      inputs: [{ name: 'x', dims }], outputs: [{ name: 'y' }], nodes: [node('Transpose', ['x'], ['y'], { perm })],
    };
    // Up to four loops after merging run the kernel; more fall back to the reference.
    await check(`Transpose [${dims}] perm [${perm}]`, spec, { kernels: rank <= 4 ? ['Transpose'] : [] });
  }
  for (let i = 0; i < 20; i++) {
    const rank = int(r, 1, 4);
    const dims = Array.from({ length: rank }, () => int(r, 1, 9));
    const axes = [...Array(rank).keys()].filter(() => r() < 0.7);
    if (!axes.length) axes.push(0);
    const steps = axes.map(() => pick(r, [1, 2, 3, -1, -2]));
    const starts = axes.map((a, j) => (steps[j] > 0 ? int(r, -dims[a], dims[a] - 1) : int(r, 0, dims[a] - 1)));
    const ends = axes.map((a, j) => (steps[j] > 0 ? int(r, 0, dims[a] + 2) : pick(r, [-dims[a] - 5, int(r, -1, dims[a] - 1)])));
    const spec: ModelSpec = {
      inputs: [{ name: 'x', dims }], outputs: [{ name: 'y' }],
      nodes: [node('Slice', ['x', 'starts', 'ends', 'axes', 'steps'], ['y'])],
      initializers: { starts: ints([axes.length], starts), ends: ints([axes.length], ends), axes: ints([axes.length], axes), steps: ints([axes.length], steps) },
    };
    await check(`Slice [${dims}] starts ${starts} ends ${ends} axes ${axes} steps ${steps}`, spec, { kernels: ['Slice'] });
  }
});

test.run();

/**
 * The facts op modules declare about themselves (what calibration, the engines and the exports ask
 * them instead of keeping lists of op types): every module with integer arithmetic has what the
 * spec builder needs, and the weight layouts agree with what each op's own reference computes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tensor, type Tensor } from '../sdk/graph/ir.js';
import { changesPrecision, opModule, opModules, supportedOps, weightOps } from '../sdk/ops/index.js';
import type { OpModule, ValueMeta } from '../sdk/ops/op.js';
import { node, rng } from './helpers.js';

/** What a module lacks that the code asking it relies on (empty: nothing). */
function missingFacts(m: OpModule<unknown>): string[] {
  const f = m.fixed;
  const out: string[] = [];
  // CalibrationState.formats() asks every node that is not a weight layer which output scales
  // its arithmetic takes; a module without `limits` would run as float fallback in calibration
  // while the engine runs it in integers.
  if (f && !f.limits && !m.weights) out.push(`${m.ops[0]}: fixed.limits`);
  // Bias calibration and calibration.json's integers read a weight layer's arithmetic.
  if (m.weights && !f?.arith) out.push(`${m.ops[0]}: fixed.arith`);
  if (m.weights && !f?.describe) out.push(`${m.ops[0]}: fixed.describe`);
  // A fused activation runs on its own where it cannot fuse (a shared producer, a model output).
  if (m.clip && !f) out.push(`${m.ops[0]}: fixed (an activation must also run on its own)`);
  // Data-moving ops pass their input's format through: their integers are the input's.
  if (m.movesData && !f) out.push(`${m.ops[0]}: fixed (an op that moves data must run on integers)`);
  return out;
}

test('every op module with integer arithmetic declares what the spec builder and the engine ask it', () => {
  assert.equal(opModules().flatMap(missingFacts), []);
  assert.equal(weightOps().sort(), ['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);
  for (const op of ['Reshape', 'Transpose', 'Slice', 'Split', 'Gather', 'Expand', 'Flatten', 'Identity']) assert.ok(opModule({ op, domain: '' })!.movesData, op);
});

test('the guard fails a module with integer arithmetic that lacks a fact (a check that could not fail would prove nothing)', () => {
  const relu = opModule({ op: 'Relu', domain: '' })!;
  const conv = opModule({ op: 'Conv', domain: '' })!;
  assert.equal(missingFacts({ ...relu, fixed: { ...relu.fixed!, limits: undefined } }), ['Relu: fixed.limits']);
  assert.equal(missingFacts({ ...conv, fixed: { ...conv.fixed!, arith: undefined } }), ['Conv: fixed.arith']);
  assert.equal(missingFacts({ ...relu, fixed: undefined }), ['Relu: fixed (an activation must also run on its own)']);
});

test('the op types at which TIDL can change precision are the eltwise, average pooling and BatchNorm layers', () => {
  const at = supportedOps().filter((key) => !key.includes(':') && changesPrecision(node(key, ['x'], ['y'])));
  assert.equal(at, ['Add', 'AveragePool', 'BatchNormalization', 'GlobalAveragePool', 'Mul', 'Sub']);
});

/** Weight layers: a weight tensor nonzero on one channel (by the module's layout) gives an output
 *  nonzero only on that channel along the module's channel axis, by the op's float reference. */
const CASES: { op: string; x: number[]; w: number[]; attrs?: Record<string, number> }[] = [
  { op: 'Conv', x: [1, 4, 5, 5], w: [6, 2, 3, 3], attrs: { group: 2 } },
  { op: 'Conv', x: [2, 3, 4, 4], w: [5, 3, 1, 1] },
  { op: 'ConvTranspose', x: [1, 4, 3, 3], w: [4, 3, 2, 2], attrs: { group: 2 } },
  { op: 'Gemm', x: [3, 5], w: [4, 5], attrs: { transB: 1 } },
  { op: 'Gemm', x: [3, 5], w: [5, 4] },
  { op: 'MatMul', x: [2, 3, 5], w: [5, 4] },
];

test('weight layouts and channel axes agree with each op\'s reference', () => {
  const r = rng(17);
  for (const c of CASES) {
    const n = node(c.op, ['x', 'w'], ['y'], c.attrs ?? {});
    const mod = opModule(n)!;
    const wFull = tensor('float32', c.w, Array.from({ length: c.w.reduce((a, b) => a * b) }, () => r(0.5, 1)));
    const metas: ValueMeta[] = [{ dtype: 'float32', shape: c.x }, { dtype: 'float32', shape: c.w, value: wFull }];
    const { params, outputs } = mod.compile({ node: n, opset: 13, inputs: metas });
    const layout = mod.weights!.layout(params, wFull);
    const shape = outputs[0].shape;
    const axis = mod.weights!.channelAxis(shape.length);
    assert.is(layout.channels, shape[axis], `${c.op}: channels`);
    const x = Float32Array.from({ length: c.x.reduce((a, b) => a * b) }, () => r(0.5, 1));
    const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    for (let ch = 0; ch < layout.channels; ch++) {
      const w: Tensor = tensor('float32', c.w, Array.from(wFull.data, (v, i) => (layout.channelOf(i) === ch ? v : 0)));
      const y = new Float32Array(shape.reduce((a, b) => a * b));
      mod.reference(params, [x, w.data], [y]);
      const hit = new Set<number>();
      y.forEach((v, i) => v !== 0 && hit.add(Math.floor(i / inner) % layout.channels));
      assert.equal([...hit], [ch], `${c.op} ${JSON.stringify(c.attrs ?? {})}: channel ${ch}`);
    }
  }
});

test.run();

/** Element-wise binary ops with multidirectional broadcasting: Add, Sub, Mul, Div, Pow, Max, Min,
 *  the comparisons, and PRelu (whose slope broadcasts onto the input). */
import { LOOPS, OP } from './codes.js';
import { isFloat, type DType, type TensorData } from '../graph/ir.js';
import { broadcastShape, broadcastWalk, collapseBroadcast } from './broadcast.js';
import { FRACTION_BITS, MAX_FACTOR, accumulatorLimit, layerBits, maxShift, rescaleFactor, roundShift, saturate, type Bits, type TensorQ } from '../device/spec.js';
import { bytesOf, checkAccumulator, checkLimits, eltwiseKernel, inputQ, maxAbs, qCode } from './fixed.js';
import {
  NO_ACTIVATION, input, kernelFn, numel, opError, paramBlock, sameShape, upload, type FixedKernelEnv, type FixedOp, type LimitContext,
  type OpModule, type ScaleLimits, type StepIntegers,
} from './op.js';

type Fn = (a: number, b: number) => number;

const ARITH: Record<string, Fn> = {
  Add: (a, b) => a + b,
  Sub: (a, b) => a - b,
  Mul: (a, b) => a * b,
  Div: (a, b) => a / b,
  Pow: (a, b) => a ** b,
  Max: (a, b) => (a >= b || Number.isNaN(a) ? a : b),
  Min: (a, b) => (a <= b || Number.isNaN(a) ? a : b),
  PRelu: (x, slope) => (x < 0 ? x * slope : x),
};
const COMPARE: Record<string, Fn> = {
  Equal: (a, b) => +(a === b),
  Greater: (a, b) => +(a > b),
  Less: (a, b) => +(a < b),
  GreaterOrEqual: (a, b) => +(a >= b),
  LessOrEqual: (a, b) => +(a <= b),
};

/** Op codes of assembly/float/binary.ts (assembly/shared.json). */
const KERNEL_OPS: Record<string, number> = OP;

export interface BinaryParams {
  op: string;
  fn: Fn;
  aShape: number[];
  bShape: number[];
  outShape: number[];
  /** Integer division truncates (int64 shape arithmetic in exported graphs). */
  intDiv: boolean;
}

export const binary: OpModule<BinaryParams> = {
  ops: [...Object.keys(ARITH), ...Object.keys(COMPARE)],
  fusesActivation: true,
  changesPrecision: (node) => node.op === 'Add' || node.op === 'Sub' || node.op === 'Mul',
  compile(ctx) {
    const op = ctx.node.op;
    const a = input(ctx, 0);
    const b = input(ctx, 1);
    if (ctx.inputs.length > 2) opError(ctx.node, 'only two inputs are supported');
    const outShape = broadcastShape([a.shape, b.shape]);
    if (!outShape || (op === 'PRelu' && !sameShape(outShape, a.shape))) {
      opError(ctx.node, `shapes [${a.shape}] and [${b.shape}] do not broadcast`);
    }
    const dtype: DType = op in COMPARE ? 'bool' : a.dtype;
    return {
      params: { op, fn: ARITH[op] ?? COMPARE[op], aShape: a.shape, bShape: b.shape, outShape, intDiv: op === 'Div' && !isFloat(a.dtype) },
      outputs: [{ dtype, shape: outShape }],
    };
  },
  reference(p, [a, b], [out]) {
    const fn: Fn = p.intDiv ? (x, y) => Math.trunc(x / y) : p.fn;
    if (sameShape(p.aShape, p.bShape)) {
      for (let i = 0; i < out.length; i++) out[i] = fn(a[i], b[i]);
      return;
    }
    broadcastWalk(p.outShape, [p.aShape, p.bShape], (k, idx) => {
      out[k] = fn(a[idx[0]], b[idx[1]]);
    });
  },
  kernel(p, env) {
    const op = KERNEL_OPS[p.op];
    const loops = collapseBroadcast(p.outShape, [p.aShape, p.bShape], 4);
    if (op === undefined || p.intDiv || !loops) return undefined;
    const { code, p0, p1 } = env.activation ?? NO_ACTIVATION;
    // Constant operands live in WASM memory of their own.
    const [ca, cb] = [0, 1].map((i) => { const v = env.inputs[i]?.value; return v ? upload(env, v.data) : 0; });
    const f = kernelFn(env, 'binary_f32_simd');
    const { dims: [n0, n1, n2, n3], strides: [[a0, a1, a2, a3], [b0, b1, b2, b3]] } = loops;
    const block = paramBlock(env, LOOPS, { n0, n1, n2, n3, a0, a1, a2, a3, b0, b1, b2, b3 });
    return ([a, b], [y]) => f(op, ca || a, cb || b, y, block, code, p0, p1);
  },
};

/**
 * Fixed point of Add/Sub/Mul on two runtime tensors (a channel-wise constant operand became a
 * depthwise layer at load, passes/transforms channelAffineLayers; other constants: float fallback).
 * Add/Sub: both inputs to the accumulator scale 2^(out + F) (F = eltwise fractional bits) by the
 * integer factors k = trunc(2^(acc - in)), acc = ka*a +/- kb*b, out = sat(roundShift(acc, F)).
 * Mul: acc = a*b at 2^(in_a + in_b), out = sat(roundShift(acc, in_a + in_b - out)), n >= 0.
 */
export interface BinaryFixed {
  p: BinaryParams;
  mul: boolean;
  ka: number;
  kb: number;
  n: number;
  lo: number;
  hi: number;
  q: [TensorQ, TensorQ, TensorQ];
}

/**
 * The output scales of a product a*b at 2^(in_a + in_b) (Mul, MatMul of two activations) whose
 * accumulator is bounded by `bound`: no left shift (out <= in_a + in_b), and a right shift the
 * word takes.
 */
export function productLimits(aq: TensorQ, bq: TensorQ, bits: Bits, bound: number): ScaleLimits {
  const acc = aq.scaleLog2 + bq.scaleLog2;
  const n = maxShift(bits, bound);
  return {
    finest: acc, finestReason: `the product's scale 2^${acc} (input 2^${aq.scaleLog2} x 2^${bq.scaleLog2}): the device cannot shift left`,
    coarsest: acc - n, coarsestReason: `a right shift of at most ${n}`,
  };
}

/** The largest output scale at which the Add/Sub sum of the inputs at their factors fits the word. */
function sumFinest(q: TensorQ[], bits: Bits): ScaleLimits {
  const F = FRACTION_BITS.eltwise[bits];
  const fits = (out: number) => {
    const ks = q.map((x) => rescaleFactor(x.scaleLog2, out + F));
    return ks.every((k) => k <= MAX_FACTOR) && ks.reduce((t, k, i) => t + maxAbs(q[i]) * k, 0) + 2 ** (F - 1) <= accumulatorLimit(bits);
  };
  // Finer than every input by the word's width, nothing fits; step down from there.
  let out = Math.max(...q.map((x) => x.scaleLog2)) + 64;
  while (!fits(out)) out--;
  return { finest: out, finestReason: `the inputs at 2^${q.map((x) => x.scaleLog2).join(', 2^')} brought to the accumulator 2^(out + ${F}) must fit the ${bits === 8 ? 'int32' : 'int64'} word` };
}

function binaryLimits(ctx: LimitContext<BinaryParams>): ScaleLimits | undefined {
  const op = ctx.node.op;
  if ((op !== 'Add' && op !== 'Sub' && op !== 'Mul') || !ctx.inQ[0] || !ctx.inQ[1]) return undefined;
  const [aq, bq, yq] = [ctx.inQ[0], ctx.inQ[1], ctx.outQ[0]];
  const bits = layerBits(aq.bits, bq.bits, yq.bits);
  return op === 'Mul' ? productLimits(aq, bq, bits, maxAbs(aq) * maxAbs(bq)) : sumFinest([aq, bq], bits);
}

binary.fixed = {
  fusesActivation: true,
  limits: binaryLimits,
  compile(ctx): BinaryFixed | undefined {
    const limits = binaryLimits(ctx);
    if (!limits) return undefined;
    checkLimits(ctx, limits);
    const op = ctx.node.op;
    const [aq, bq, yq] = [inputQ(ctx, 0), inputQ(ctx, 1), ctx.outQ[0]];
    const bits = layerBits(aq.bits, bq.bits, yq.bits);
    const [lo, hi] = ctx.bounds[0];
    const rnd = (n: number) => (n > 0 ? 2 ** (n - 1) : 0);
    if (op === 'Mul') {
      const n = aq.scaleLog2 + bq.scaleLog2 - yq.scaleLog2;
      checkAccumulator(ctx.node, maxAbs(aq) * maxAbs(bq) + rnd(n), bits, 'the product');
      return { p: ctx.params, mul: true, ka: 1, kb: 1, n, lo, hi, q: [aq, bq, yq] };
    }
    const n = FRACTION_BITS.eltwise[bits];
    const acc = yq.scaleLog2 + n;
    const ka = rescaleFactor(aq.scaleLog2, acc);
    const kb = (op === 'Sub' ? -1 : 1) * rescaleFactor(bq.scaleLog2, acc);
    checkAccumulator(ctx.node, maxAbs(aq) * ka + maxAbs(bq) * Math.abs(kb) + rnd(n), bits, 'the sum');
    return { p: ctx.params, mul: false, ka, kb, n, lo, hi, q: [aq, bq, yq] };
  },
  // Mul: y = sat(roundShift(a*b, shift)); Add/Sub: y = sat(roundShift(ka*a + kb*b, shift)), the
  // sum at the accumulator 2^accLog2.
  describe: (f): StepIntegers => (f.mul ? { shift: f.n, saturate: [f.lo, f.hi] }
    : { factors: [f.ka, f.kb], accLog2: f.q[2].scaleLog2 + f.n, shift: f.n, saturate: [f.lo, f.hi] }),
  reference(f, [a, b], [y]) {
    const fin = (acc: number) => saturate(roundShift(acc, f.n), f.lo, f.hi);
    const combine = f.mul ? (x: number, z: number) => fin(x * z) : (x: number, z: number) => fin(f.ka * x + f.kb * z);
    if (sameShape(f.p.aShape, f.p.bShape)) {
      for (let i = 0; i < y.length; i++) y[i] = combine(a[i], b[i]);
      return;
    }
    broadcastWalk(f.p.outShape, [f.p.aShape, f.p.bShape], (k, idx) => {
      y[k] = combine(a[idx[0]], b[idx[1]]);
    });
  },
  kernel(f, env) {
    const run = sameShapeKernel(f, env);
    if (sameShape(f.p.aShape, f.p.bShape)) {
      const len = numel(f.p.outShape);
      return ([a, b], [y]) => run(a, b, y, len);
    }
    // Broadcast: the innermost loop's runs through the same kernel, an operand that repeats one
    // value along it written out into scratch first. Short runs stay with the reference.
    const loops = collapseBroadcast(f.p.outShape, [f.p.aShape, f.p.bShape], 4);
    if (!loops || loops.dims[3] < 16) return undefined;
    const { dims: [n0, n1, n2, n3], strides: [sa, sb] } = loops;
    const [aq, bq, yq] = f.q;
    const [ab, bb, yb] = [aq, bq, yq].map(bytesOf);
    const repeated = env.scratch(n3 * 2);
    const repeat = (p: number, bytes: number) => {
      const View = bytes === 1 ? Uint8Array : Uint16Array;
      const buf = env.buffer();
      new View(buf, repeated.ptr, n3).fill(new View(buf, p, 1)[0]);
      return repeated.ptr;
    };
    return ([a, b], [y]) => {
      let yo = y;
      for (let i0 = 0; i0 < n0; i0++) {
        for (let i1 = 0; i1 < n1; i1++) {
          for (let i2 = 0; i2 < n2; i2++) {
            const pa = a + (i0 * sa[0] + i1 * sa[1] + i2 * sa[2]) * ab, pb = b + (i0 * sb[0] + i1 * sb[1] + i2 * sb[2]) * bb;
            run(sa[3] ? pa : repeat(pa, ab), sb[3] ? pb : repeat(pb, bb), yo, n3);
            yo += n3 * yb;
          }
        }
      }
    };
  },
} satisfies FixedOp<BinaryParams, BinaryFixed>;

/** The kernel of `len` same-shape elements at byte offsets a, b -> y. */
function sameShapeKernel(f: BinaryFixed, env: FixedKernelEnv): (a: number, b: number, y: number, len: number) => void {
  const [aq, bq, yq] = f.q;
  if (f.mul) {
    if (layerBits(aq.bits, bq.bits, yq.bits) === 8) {
      const k = kernelFn(env, 'mul_q8_simd');
      return (a, b, y, len) => k(a, +aq.signed, b, +bq.signed, len, f.n, f.lo, f.hi, y, +yq.signed);
    }
    const k = kernelFn(env, 'mul_q16_scalar');
    return (a, b, y, len) => k(a, qCode(aq), b, qCode(bq), len, f.n, f.lo, f.hi, y, qCode(yq));
  }
  const k = eltwiseKernel(env, ...f.q);
  return (a, b, y, len) => k(a, f.ka, b, f.kb, len, f, y);
}

export interface WhereParams { shapes: number[][]; outShape: number[] }

/** Where(cond, x, y): three-way broadcast select. */
export const where: OpModule<WhereParams> = {
  ops: ['Where'],
  compile(ctx) {
    const shapes = [0, 1, 2].map((i) => input(ctx, i).shape);
    const outShape = broadcastShape(shapes);
    if (!outShape) opError(ctx.node, `shapes ${shapes.map((s) => `[${s}]`).join(' ')} do not broadcast`);
    return { params: { shapes, outShape }, outputs: [{ dtype: input(ctx, 1).dtype, shape: outShape }] };
  },
  reference(p, [c, x, y], [out]: TensorData[]) {
    broadcastWalk(p.outShape, p.shapes, (k, idx) => {
      out[k] = c[idx[0]] ? x[idx[1]] : y[idx[2]];
    });
  },
};

/** MatMul with numpy semantics: 1-D operands promoted, batch dimensions broadcast. */
import { layerBits, roundShift, saturate, type TensorQ } from '../device/spec.js';
import { productLimits } from './binary.js';
import { broadcastShape, broadcastStrides } from './broadcast.js';
import { bindPackedB } from './gemm.js';
import { checkAccumulator, checkLimits, columnLayout, constantB, fcKernel, inputQ, maxAbs, weightFixed, type WeightFixed } from './fixed.js';
import { NO_ACTIVATION, input, kernelFn, numel, opError, upload, type FixedOp, type KernelCall, type KernelEnv, type LimitContext, type OpModule, type ScaleLimits } from './op.js';

export interface MatMulParams {
  m: number; k: number; n: number;
  /** Batch shape of the output and, per batch index, the matrix offsets into A and B. */
  batch: number;
  aOffsets: Int32Array;
  bOffsets: Int32Array;
}

export const matmul: OpModule<MatMulParams> = {
  ops: ['MatMul'],
  fusesActivation: true,
  weights: { layout: (_p, w) => columnLayout(w), channelAxis: (rank) => rank - 1, isLayer: (_p, inputs) => constantB(inputs) },
  compile(ctx) {
    const a = input(ctx, 0).shape;
    const b = input(ctx, 1).shape;
    if (a.length === 0 || b.length === 0) opError(ctx.node, 'scalar operands are not allowed');
    const a2 = a.length === 1 ? [1, a[0]] : a;
    const b2 = b.length === 1 ? [b[0], 1] : b;
    const [m, k] = a2.slice(-2);
    const [kb, n] = b2.slice(-2);
    if (k !== kb) opError(ctx.node, `inner dimensions differ: [${a}] x [${b}]`);
    const batchShape = broadcastShape([a2.slice(0, -2), b2.slice(0, -2)]);
    if (!batchShape) opError(ctx.node, `batch dimensions of [${a}] and [${b}] do not broadcast`);
    const batch = numel(batchShape);
    const sa = broadcastStrides(a2.slice(0, -2), batchShape);
    const sb = broadcastStrides(b2.slice(0, -2), batchShape);
    const aOffsets = new Int32Array(batch);
    const bOffsets = new Int32Array(batch);
    for (let i = 0; i < batch; i++) {
      let rem = i, oa = 0, ob = 0;
      for (let d = batchShape.length - 1; d >= 0; d--) {
        const c = rem % batchShape[d];
        rem = Math.floor(rem / batchShape[d]);
        oa += c * sa[d];
        ob += c * sb[d];
      }
      aOffsets[i] = oa * m * k;
      bOffsets[i] = ob * k * n;
    }
    const shape = [...batchShape, ...(a.length === 1 ? [] : [m]), ...(b.length === 1 ? [] : [n])];
    return { params: { m, k, n, batch, aOffsets, bOffsets }, outputs: [{ dtype: input(ctx, 0).dtype, shape }] };
  },
  reference(p, [a, b], [y]) {
    for (let bi = 0; bi < p.batch; bi++) {
      const ao = p.aOffsets[bi], bo = p.bOffsets[bi], yo = bi * p.m * p.n;
      for (let i = 0; i < p.m; i++) {
        for (let j = 0; j < p.n; j++) {
          let acc = 0;
          for (let t = 0; t < p.k; t++) acc += a[ao + i * p.k + t] * b[bo + t * p.n + j];
          y[yo + i * p.n + j] = acc;
        }
      }
    }
  },
  kernel(p, env) {
    const b = env.inputs[1]?.value?.data;
    if (!b) return bindActivations(p, env);
    // A constant B shared by every batch, and A's batches stacked: one GEMM over batch*m rows.
    if (!p.bOffsets.every((o) => o === 0) || !p.aOffsets.every((o, i) => o === i * p.m * p.k)) return undefined;
    return bindPackedB(env, p.batch * p.m, p.k, p.n, (t, j) => b[t * p.n + j], undefined);
  },
};

/** Both operands computed (attention): B packed per call, per batch (matmul_f32_act_simd). */
function bindActivations(p: MatMulParams, env: KernelEnv): KernelCall {
  const panels = Math.ceil(p.n / 8);
  const offsets = upload(env, p.aOffsets), bOffsets = upload(env, p.bOffsets);
  const zero = upload(env, new Float32Array(panels * 8));
  const bytes = [panels * 8 * p.k * 4, p.k * 16];
  const scratch = env.scratch ? env.scratch(bytes[0] + bytes[1]) : { ptr: env.alloc(bytes[0] + bytes[1]) };
  const { code, p0, p1 } = env.activation ?? NO_ACTIVATION;
  const f = kernelFn(env, 'matmul_f32_act_simd');
  return ([a, b], [y]) => f(a, b, y, p.batch, offsets, bOffsets, p.m, p.k, p.n, scratch.ptr, zero, scratch.ptr + bytes[0], code, p0, p1);
}

/** MatMul with constant 2-D weights B [K, N]: a fully connected layer over the rows of A. */
const weightMatMul = weightFixed<MatMulParams>(matmul, ({ node, params: p, inputs }) => {
  if (inputs[1]?.shape.length !== 2) opError(node, 'fixed point needs constant 2-D weights [K, N]');
  return {
    macParams: p,
    weightShape: [p.k, p.n],
    channels: p.n,
    weightChannel: (i) => i % p.n,
    outChannel: (i) => i % p.n,
    outLength: p.batch * p.m * p.n,
  };
}, (f, env) => {
  const p = f.macParams;
  return fcKernel(f, env, p.batch * p.m, p.k, p.n, (t, j) => f.w[t * p.n + j]);
});

/**
 * MatMul of two activations (attention's Q·Kᵀ and scores·V) with Mul's arithmetic: every output
 * is an int32 (int64 when an operand is 16-bit) sum of K products a*b at 2^(in_a + in_b), then
 * out = sat(roundShift(acc, in_a + in_b - out)). Where K products could leave the word, the node
 * runs as float fallback.
 */
export interface ActMatMulFixed { p: MatMulParams; n: number; lo: number; hi: number; acc: Float64Array }

function actLimits(ctx: LimitContext<MatMulParams>): ScaleLimits | undefined {
  const [aq, bq, yq] = [ctx.inQ[0], ctx.inQ[1], ctx.outQ[0]];
  if (!aq || !bq) return undefined;
  const bits = layerBits(aq.bits, bq.bits, yq.bits);
  const limits = productLimits(aq, bq, bits, ctx.params.k * maxAbs(aq) * maxAbs(bq));
  return limits.coarsest! > limits.finest! ? undefined : limits;
}

const activationMatMul: FixedOp<MatMulParams, ActMatMulFixed> = {
  limits: actLimits,
  compile(ctx) {
    const limits = actLimits(ctx);
    if (!limits) return undefined;
    checkLimits(ctx, limits);
    const [aq, bq, yq]: TensorQ[] = [inputQ(ctx, 0), inputQ(ctx, 1), ctx.outQ[0]];
    const n = aq.scaleLog2 + bq.scaleLog2 - yq.scaleLog2;
    checkAccumulator(ctx.node, ctx.params.k * maxAbs(aq) * maxAbs(bq) + (n > 0 ? 2 ** (n - 1) : 0), layerBits(aq.bits, bq.bits, yq.bits), 'the sum of products');
    const [lo, hi] = ctx.bounds[0];
    return { p: ctx.params, n, lo, hi, acc: new Float64Array(ctx.params.batch * ctx.params.m * ctx.params.n) };
  },
  // acc = sum a*b at 2^(in_a + in_b); y = sat((acc + 2^(shift-1)) >> shift).
  describe: (f) => ({ shift: f.n, saturate: [f.lo, f.hi] }),
  reference(f, [a, b], [y]) {
    // The float reference on integers is exact: every partial sum is an integer below 2^53.
    matmul.reference(f.p, [Float64Array.from(a), Float64Array.from(b)], [f.acc]);
    for (let i = 0; i < y.length; i++) y[i] = saturate(roundShift(f.acc[i], f.n), f.lo, f.hi);
  },
};

type MatMulFixed = { weights: WeightFixed<MatMulParams> } | { product: ActMatMulFixed };

/** Constant B: the weight layer; B computed at run time: the product of two activations. */
matmul.fixed = {
  fusesActivation: true,
  limits: (ctx) => (ctx.inQ[1] ? actLimits(ctx) : undefined),
  compile(ctx) {
    if (ctx.inQ[1]) {
      const product = activationMatMul.compile(ctx);
      return product && { product };
    }
    const weights = weightMatMul.compile(ctx);
    return weights && { weights };
  },
  reference: (f, inputs, outputs) => ('weights' in f ? weightMatMul.reference(f.weights, inputs, outputs) : activationMatMul.reference(f.product, inputs, outputs)),
  kernel: (f, env) => ('weights' in f ? weightMatMul.kernel!(f.weights, env) : undefined),
  arith: (f) => ('weights' in f ? f.weights.arith : undefined),
  describe: (f) => ('weights' in f ? weightMatMul.describe!(f.weights) : activationMatMul.describe!(f.product)),
} satisfies FixedOp<MatMulParams, MatMulFixed>;

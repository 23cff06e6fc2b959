/** Gemm: Y = alpha * A' * B' + beta * C, with A' and B' optionally transposed and C broadcast. */
import { broadcastShape, broadcastWalk } from './broadcast.js';
import type { TensorData } from '../graph/ir.js';
import { columnLayout, constantB, fcKernel, weightFixed } from './fixed.js';
import { NO_ACTIVATION, attr, checkRank, input, kernelFn, opError, upload, type KernelCall, type KernelEnv, type OpModule } from './op.js';

export interface GemmParams {
  m: number; k: number; n: number;
  transA: boolean; transB: boolean;
  alpha: number; beta: number;
  /** Shape of C, or undefined when there is none. */
  cShape?: number[];
}

/**
 * Y[m x n] = A * B + bias for a constant B read through `at(row, col)`: B packed for
 * matmul_f32_packedb_simd in panels of 8 columns ([ceil(n/8)][k][8], zero columns past n), A read
 * in place row by row. Shared by Gemm and MatMul.
 */
export function bindPackedB(
  env: KernelEnv, m: number, k: number, n: number, at: (row: number, col: number) => number, bias: Float32Array | undefined,
): KernelCall {
  const panels = Math.ceil(n / 8);
  const packed = new Float32Array(panels * k * 8);
  for (let j = 0; j < n; j++) {
    const base = (j >> 3) * k * 8 + (j & 7);
    for (let t = 0; t < k; t++) packed[base + 8 * t] = at(t, j);
  }
  const bp = upload(env, packed);
  const biasPadded = new Float32Array(panels * 8);
  if (bias) biasPadded.set(bias);
  const cp = upload(env, biasPadded);
  const ap = env.alloc(k * 16);
  const { code, p0, p1 } = env.activation ?? NO_ACTIVATION;
  const f = kernelFn(env, 'matmul_f32_packedb_simd');
  return ([a], [y]) => f(a, k, bp, cp, y, n, m, k, n, ap, code, p0, p1);
}

/** C as one value per column (beta folded in), when it broadcasts along rows only. */
function columnBias(p: GemmParams, c: TensorData): Float32Array | undefined {
  const shape = p.cShape!;
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== 1 && (shape[shape.length - 1] !== p.n || size !== p.n)) return undefined;
  return Float32Array.from({ length: p.n }, (_, j) => p.beta * c[size === 1 ? 0 : j]);
}

export const gemm: OpModule<GemmParams> = {
  ops: ['Gemm'],
  fusesActivation: true,
  weights: {
    // B is [N, K] with transB, else [K, N].
    layout: (p, w) => (p.transB ? { channels: w.dims[0], channelOf: (i) => Math.floor(i / w.dims[1]) } : columnLayout(w)),
    channelAxis: (rank) => rank - 1,
    isLayer: (p, inputs) => !p.transA && constantB(inputs),
  },
  compile(ctx) {
    const a = input(ctx, 0);
    const b = input(ctx, 1);
    checkRank(ctx, a, 2, 'A');
    checkRank(ctx, b, 2, 'B');
    const transA = attr.int(ctx, 'transA', 0) !== 0;
    const transB = attr.int(ctx, 'transB', 0) !== 0;
    const [m, k] = transA ? [a.shape[1], a.shape[0]] : a.shape;
    const [kb, n] = transB ? [b.shape[1], b.shape[0]] : b.shape;
    if (k !== kb) opError(ctx.node, `inner dimensions differ: A [${a.shape}], B [${b.shape}]`);
    const c = ctx.inputs[2];
    if (c && !broadcastShape([c.shape, [m, n]])?.every((d, i) => d === [m, n][i])) {
      opError(ctx.node, `C [${c.shape}] does not broadcast to [${m},${n}]`);
    }
    return {
      params: { m, k, n, transA, transB, alpha: attr.float(ctx, 'alpha', 1), beta: attr.float(ctx, 'beta', 1), cShape: c?.shape },
      outputs: [{ dtype: a.dtype, shape: [m, n] }],
    };
  },
  reference(p, [a, b, c], [y]) {
    for (let i = 0; i < p.m; i++) {
      for (let j = 0; j < p.n; j++) {
        let acc = 0;
        for (let t = 0; t < p.k; t++) {
          acc += a[p.transA ? t * p.m + i : i * p.k + t] * b[p.transB ? j * p.k + t : t * p.n + j];
        }
        y[i * p.n + j] = p.alpha * acc;
      }
    }
    if (p.cShape) broadcastWalk([p.m, p.n], [p.cShape], (k, idx) => { y[k] += p.beta * c[idx[0]]; });
  },
  kernel(p, env) {
    const b = env.inputs[1]?.value?.data;
    const c = p.cShape ? env.inputs[2]?.value?.data : undefined;
    if (!b || p.transA || (p.cShape && !c)) return undefined;
    const bias = c && columnBias(p, c);
    if (c && !bias) return undefined;
    const at = p.transB ? (t: number, j: number) => p.alpha * b[j * p.k + t] : (t: number, j: number) => p.alpha * b[t * p.n + j];
    return bindPackedB(env, p.m, p.k, p.n, at, bias);
  },
};

/** In fixed point the LayerQ holds the effective weights (alpha * B) and bias (beta * C). */
gemm.fixed = weightFixed<GemmParams>(gemm, ({ node, params: p }) => {
  if (p.transA) opError(node, 'a transposed A (transA) has no fixed-point form');
  return {
    macParams: { ...p, alpha: 1, cShape: undefined },
    weightShape: p.transB ? [p.n, p.k] : [p.k, p.n],
    channels: p.n,
    weightChannel: (i) => (p.transB ? Math.floor(i / p.k) : i % p.n),
    outChannel: (i) => i % p.n,
    outLength: p.m * p.n,
  };
}, (f, env) => {
  const p = f.macParams;
  return fcKernel(f, env, p.m, p.k, p.n, (t, j) => f.w[p.transB ? j * p.k + t : t * p.n + j]);
});

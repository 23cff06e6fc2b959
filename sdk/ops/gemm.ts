/** Gemm: Y = alpha * A' * B' + beta * C, with A' and B' optionally transposed and C broadcast. */
import { broadcastShape, broadcastWalk } from './broadcast.js';
import { fcKernel, weightFixed } from './fixed.js';
import { attr, checkRank, input, opError, type OpModule } from './op.js';

export interface GemmParams {
  m: number; k: number; n: number;
  transA: boolean; transB: boolean;
  alpha: number; beta: number;
  /** Shape of C, or undefined when there is none. */
  cShape?: number[];
}

export const gemm: OpModule<GemmParams> = {
  ops: ['Gemm'],
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

/** Transpose: permute the axes (reversed when perm is absent). */
import { collapseLoops } from './broadcast.js';
import { moveFixed } from './fixed.js';
import { BY_WIDTH, attr, input, kernelFn, opError, strides, type KernelCall, type MoveEnv, type OpModule } from './op.js';

export interface TransposeParams { perm: number[]; inShape: number[]; outShape: number[] }

export const transpose: OpModule<TransposeParams> = {
  ops: ['Transpose'],
  movesData: true,
  compile(ctx) {
    const x = input(ctx, 0);
    const rank = x.shape.length;
    const perm = attr.ints(ctx, 'perm') ?? [...Array(rank).keys()].reverse();
    if (perm.length !== rank || [...perm].sort((a, b) => a - b).some((v, i) => v !== i)) {
      opError(ctx.node, `perm [${perm}] is not a permutation of ${rank} axes`);
    }
    const outShape = perm.map((p) => x.shape[p]);
    return { params: { perm, inShape: x.shape, outShape }, outputs: [{ dtype: x.dtype, shape: outShape }] };
  },
  reference(p, [x], [y]) {
    const inStrides = strides(p.inShape);
    const s = p.perm.map((a) => inStrides[a]);
    const rank = p.outShape.length;
    const counter = new Array<number>(rank).fill(0);
    let src = 0;
    for (let k = 0; k < y.length; k++) {
      y[k] = x[src];
      for (let a = rank - 1; a >= 0; a--) {
        counter[a]++;
        src += s[a];
        if (counter[a] < p.outShape[a]) break;
        src -= s[a] * counter[a];
        counter[a] = 0;
      }
    }
  },
  kernel: (p, env) => transposeKernel(p, { ...env, bytes: 4 }),
};

/** A strided copy of elements of `env.bytes` bytes. */
function transposeKernel(p: TransposeParams, env: MoveEnv): KernelCall | undefined {
  const inStrides = strides(p.inShape);
  const loops = collapseLoops(p.outShape, [p.perm.map((a) => inStrides[a])], 4);
  if (!loops) return undefined;
  const f = kernelFn(env, BY_WIDTH.copy[env.bytes]);
  const { dims: [n0, n1, n2, n3], strides: [[s0, s1, s2, s3]] } = loops;
  return ([x], [y]) => f(x, y, n0, n1, n2, n3, s0, s1, s2, s3);
}

/** Fixed point: moves integers as they are. */
transpose.fixed = moveFixed(transpose, undefined, transposeKernel);

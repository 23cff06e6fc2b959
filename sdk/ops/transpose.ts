/** Transpose: permute the axes (reversed when perm is absent). */
import { attr, input, opError, strides, type OpModule } from './op.js';
import { moveFixed } from './fixed.js';

export interface TransposeParams { perm: number[]; inShape: number[]; outShape: number[] }

export const transpose: OpModule<TransposeParams> = {
  ops: ['Transpose'],
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
};

/** Fixed point: moves integers as they are. */
transpose.fixed = moveFixed(transpose);

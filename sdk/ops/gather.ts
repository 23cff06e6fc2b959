/** Gather along one axis; negative indices count from the end. */
import { attr, axis, input, opError, type OpModule } from './op.js';
import { moveFixed } from './fixed.js';

export interface GatherParams { outer: number; axisDim: number; inner: number; count: number }

export const gather: OpModule<GatherParams> = {
  ops: ['Gather'],
  movesData: true,
  compile(ctx) {
    const x = input(ctx, 0);
    const idx = input(ctx, 1);
    const a = axis(ctx, attr.int(ctx, 'axis', 0), x.shape.length);
    const outShape = [...x.shape.slice(0, a), ...idx.shape, ...x.shape.slice(a + 1)];
    const axisDim = x.shape[a];
    if (idx.value?.data.some((i) => i < -axisDim || i >= axisDim)) opError(ctx.node, `an index is out of range for axis size ${axisDim}`);
    return {
      params: {
        outer: x.shape.slice(0, a).reduce((p, q) => p * q, 1),
        axisDim,
        inner: x.shape.slice(a + 1).reduce((p, q) => p * q, 1),
        count: idx.shape.reduce((p, q) => p * q, 1),
      },
      outputs: [{ dtype: x.dtype, shape: outShape }],
    };
  },
  reference(p, [x, indices], [y]) {
    for (let o = 0; o < p.outer; o++) {
      for (let j = 0; j < p.count; j++) {
        let i = indices[j];
        if (i < 0) i += p.axisDim;
        const src = (o * p.axisDim + i) * p.inner;
        y.set(x.subarray(src, src + p.inner), (o * p.count + j) * p.inner);
      }
    }
  },
};

/** Fixed point: moves integers as they are. */
gather.fixed = moveFixed(gather);

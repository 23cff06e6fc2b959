/** Split along one axis: sizes from the `split` attribute (< opset 13), the `split` input
 *  (>= 13), or equal parts (num_outputs from opset 18). */
import { attr, axis, constInput, input, opError, type OpModule } from './op.js';
import { moveFixed } from './fixed.js';

export interface SplitParams { outer: number; chunks: number[] }

export const split: OpModule<SplitParams> = {
  ops: ['Split'],
  movesData: true,
  compile(ctx) {
    const x = input(ctx, 0);
    const a = axis(ctx, attr.int(ctx, 'axis', 0), x.shape.length);
    const count = ctx.node.outputs.length;
    const dim = x.shape[a];
    let sizes = ctx.opset < 13 ? attr.ints(ctx, 'split') : constInput(ctx, 1, 'split');
    if (!sizes) {
      const part = Math.ceil(dim / count);
      sizes = Array.from({ length: count }, (_, i) => Math.max(0, Math.min(part, dim - i * part)));
    }
    if (sizes.length !== count || sizes.reduce((s, v) => s + v, 0) !== dim) {
      opError(ctx.node, `split sizes [${sizes}] do not divide axis ${a} of [${x.shape}] into ${count} outputs`);
    }
    const inner = x.shape.slice(a + 1).reduce((p, q) => p * q, 1);
    return {
      params: { outer: x.shape.slice(0, a).reduce((p, q) => p * q, 1), chunks: sizes.map((s) => s * inner) },
      outputs: sizes.map((s) => {
        const shape = [...x.shape];
        shape[a] = s;
        return { dtype: x.dtype, shape };
      }),
    };
  },
  reference(p, [x], outputs) {
    const total = p.chunks.reduce((a, b) => a + b, 0);
    let offset = 0;
    outputs.forEach((y, i) => {
      const c = p.chunks[i];
      for (let o = 0; o < p.outer; o++) y.set(x.subarray(o * total + offset, o * total + offset + c), o * c);
      offset += c;
    });
  },
};

/** Fixed point: moves integers as they are. */
split.fixed = moveFixed(split);

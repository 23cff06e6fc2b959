/** Concat along one axis. */
import { attr, axis, input, opError, type OpModule } from './op.js';

export interface ConcatParams {
  /** Product of dims before the axis. */
  outer: number;
  /** Per input: its extent along the axis times the product of dims after it. */
  chunks: number[];
}

export const concat: OpModule<ConcatParams> = {
  ops: ['Concat'],
  compile(ctx) {
    const first = input(ctx, 0);
    const rank = first.shape.length;
    const a = axis(ctx, attr.int(ctx, 'axis', rank === 1 ? 0 : 1), rank);
    const shapes = ctx.inputs.map((_, i) => input(ctx, i).shape);
    for (const s of shapes) {
      if (s.length !== rank || s.some((d, i) => i !== a && d !== first.shape[i])) {
        opError(ctx.node, `input shapes ${shapes.map((x) => `[${x}]`).join(' ')} differ off axis ${a}`);
      }
    }
    const inner = first.shape.slice(a + 1).reduce((x, y) => x * y, 1);
    const outShape = [...first.shape];
    outShape[a] = shapes.reduce((t, s) => t + s[a], 0);
    return {
      params: { outer: first.shape.slice(0, a).reduce((x, y) => x * y, 1), chunks: shapes.map((s) => s[a] * inner) },
      outputs: [{ dtype: first.dtype, shape: outShape }],
    };
  },
  reference(p, inputs, [y]) {
    const total = p.chunks.reduce((a, b) => a + b, 0);
    let offset = 0;
    inputs.forEach((x, i) => {
      const c = p.chunks[i];
      for (let o = 0; o < p.outer; o++) y.set(x.subarray(o * c, (o + 1) * c), o * total + offset);
      offset += c;
    });
  },
};

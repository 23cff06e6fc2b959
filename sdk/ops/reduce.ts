/** ReduceMean/Sum/Max/Min over a set of axes; axes as an attribute (Sum < 13, others < 18) or
 *  an input, keepdims, noop_with_empty_axes. */
import { attr, axis, constInput, input, strides, type OpModule } from './op.js';

export interface ReduceParams { kind: 'mean' | 'sum' | 'max' | 'min'; inShape: number[]; axes: number[]; outShape: number[] }

const KINDS: Record<string, ReduceParams['kind']> = { ReduceMean: 'mean', ReduceSum: 'sum', ReduceMax: 'max', ReduceMin: 'min' };

export const reduce: OpModule<ReduceParams> = {
  ops: Object.keys(KINDS),
  compile(ctx) {
    const x = input(ctx, 0);
    const rank = x.shape.length;
    const axesAsInput = ctx.opset >= (ctx.node.op === 'ReduceSum' ? 13 : 18);
    const raw = axesAsInput ? constInput(ctx, 1, 'axes') : attr.ints(ctx, 'axes');
    const noop = attr.int(ctx, 'noop_with_empty_axes', 0) !== 0;
    const axes = raw?.length ? raw.map((a) => axis(ctx, a, rank)) : noop ? [] : [...Array(rank).keys()];
    const keep = attr.int(ctx, 'keepdims', 1) !== 0;
    const outShape = x.shape.flatMap((d, i) => (axes.includes(i) ? (keep ? [1] : []) : [d]));
    return { params: { kind: KINDS[ctx.node.op], inShape: x.shape, axes, outShape }, outputs: [{ dtype: x.dtype, shape: outShape }] };
  },
  reference(p, [x], [y]) {
    const s = strides(p.inShape);
    const kept = p.inShape.map((d, i) => (p.axes.includes(i) ? 1 : d));
    const ks = strides(kept);
    const init = p.kind === 'max' ? -Infinity : p.kind === 'min' ? Infinity : 0;
    y.fill(init);
    const count = p.axes.reduce((n, a) => n * p.inShape[a], 1);
    for (let k = 0; k < x.length; k++) {
      let o = 0;
      for (let a = 0; a < p.inShape.length; a++) if (kept[a] !== 1) o += (Math.floor(k / s[a]) % p.inShape[a]) * ks[a];
      const v = x[k];
      y[o] = p.kind === 'max' ? Math.max(y[o], v) : p.kind === 'min' ? Math.min(y[o], v) : y[o] + v;
    }
    if (p.kind === 'mean') for (let i = 0; i < y.length; i++) y[i] /= count;
  },
};

/** Pad: constant, reflect and edge modes; pads as an attribute (< opset 11) or input (>= 11,
 *  with axes from 18). */
import { quantizeValue } from '../device/spec.js';
import { moveFixed } from './fixed.js';
import { attr, axis, constInput, input, opError, strides, type OpModule } from './op.js';

export interface PadParams { mode: 'constant' | 'reflect' | 'edge'; value: number; inShape: number[]; outShape: number[]; begin: number[] }

export const pad: OpModule<PadParams> = {
  ops: ['Pad'],
  // Reflect and edge modes repeat values too, but the device pads with a constant only.
  movesData: (node) => (node.attrs.mode?.value ?? 'constant') === 'constant',
  compile(ctx) {
    const x = input(ctx, 0);
    const rank = x.shape.length;
    const mode = attr.string(ctx, 'mode', 'constant');
    if (mode !== 'constant' && mode !== 'reflect' && mode !== 'edge') opError(ctx.node, `mode "${mode}" is not supported`);
    const old = ctx.opset < 11;
    const raw = old ? attr.ints(ctx, 'pads') ?? attr.ints(ctx, 'paddings') : constInput(ctx, 1, 'pads');
    const value = old ? attr.float(ctx, 'value', 0) : constInput(ctx, 2, 'constant_value')?.[0] ?? 0;
    const axes = (old ? undefined : constInput(ctx, 3, 'axes'))?.map((a) => axis(ctx, a, rank)) ?? [...Array(rank).keys()];
    if (!raw || raw.length !== 2 * axes.length) opError(ctx.node, `pads must hold ${2 * axes.length} values`);
    const begin = new Array<number>(rank).fill(0);
    const end = new Array<number>(rank).fill(0);
    axes.forEach((a, i) => { begin[a] = raw[i]; end[a] = raw[i + axes.length]; });
    if (begin.some((b) => b < 0) || end.some((e) => e < 0)) opError(ctx.node, 'negative pads (cropping) are not supported');
    if (mode === 'reflect' && x.shape.some((d, a) => (begin[a] > 0 || end[a] > 0) && (begin[a] >= d || end[a] >= d))) {
      opError(ctx.node, 'reflect pads must be smaller than the padded dimension');
    }
    const outShape = x.shape.map((d, a) => d + begin[a] + end[a]);
    return { params: { mode, value, inShape: x.shape, outShape, begin }, outputs: [{ dtype: x.dtype, shape: outShape }] };
  },
  reference(p, [x], [y]) {
    const inS = strides(p.inShape);
    const outS = strides(p.outShape);
    for (let k = 0; k < y.length; k++) {
      let src = 0;
      let outside = false;
      for (let a = 0; a < p.outShape.length; a++) {
        const d = p.inShape[a];
        let i = Math.floor(k / outS[a]) % p.outShape[a] - p.begin[a];
        if (i < 0 || i >= d) {
          if (p.mode === 'constant') { outside = true; break; }
          if (p.mode === 'edge') i = i < 0 ? 0 : d - 1;
          else i = i < 0 ? -i : 2 * (d - 1) - i;
        }
        src += i * inS[a];
      }
      y[k] = outside ? p.value : x[src];
    }
  },
};

/** Fixed point: the constant pad value is converted to the input's format like any float. */
pad.fixed = moveFixed(pad, (p, xq) => ({ ...p, value: quantizeValue(p.value, xq) }));

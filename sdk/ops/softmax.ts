/** Softmax (and LogSoftmax). Before opset 13 the input is seen as 2-D, flattened at `axis`;
 *  from 13 on it runs along the single axis. */
import { attr, axis, input, kernelFn, type OpModule } from './op.js';
import { exp, log } from '../util/math.js';

export interface SoftmaxParams { outer: number; dim: number; inner: number; log: boolean }

export const softmax: OpModule<SoftmaxParams> = {
  ops: ['Softmax', 'LogSoftmax'],
  compile(ctx) {
    const x = input(ctx, 0);
    const rank = x.shape.length;
    const old = ctx.opset < 13;
    const a = axis(ctx, attr.int(ctx, 'axis', old ? 1 : -1), rank);
    const prod = (s: number[]) => s.reduce((p, q) => p * q, 1);
    const params = old
      ? { outer: prod(x.shape.slice(0, a)), dim: prod(x.shape.slice(a)), inner: 1 }
      : { outer: prod(x.shape.slice(0, a)), dim: x.shape[a], inner: prod(x.shape.slice(a + 1)) };
    return { params: { ...params, log: ctx.node.op === 'LogSoftmax' }, outputs: [{ dtype: x.dtype, shape: x.shape }] };
  },
  outputRange: (p) => (p.log ? undefined : [0, 1]),
  reference(p, [x], [y]) {
    for (let o = 0; o < p.outer; o++) {
      for (let i = 0; i < p.inner; i++) {
        const base = o * p.dim * p.inner + i;
        let max = -Infinity;
        for (let d = 0; d < p.dim; d++) max = Math.max(max, x[base + d * p.inner]);
        let sum = 0;
        for (let d = 0; d < p.dim; d++) sum += exp(x[base + d * p.inner] - max);
        for (let d = 0; d < p.dim; d++) {
          const z = x[base + d * p.inner] - max;
          y[base + d * p.inner] = p.log ? z - log(sum) : exp(z) / sum;
        }
      }
    }
  },
  kernel(p, env) {
    const f = kernelFn(env, 'softmax_f32_simd');
    return ([x], [y]) => f(x, y, p.outer, p.dim, p.inner, +p.log);
  },
};

/** BatchNormalization in inference form: y = (x - mean) / sqrt(var + eps) * scale + bias, per
 *  channel (axis 1). Folded into a preceding Conv/Gemm where possible (passes/transforms). */
import { attr, input, opError, type OpModule } from './op.js';

export interface BatchNormParams { n: number; c: number; size: number; epsilon: number }

export const batchNorm: OpModule<BatchNormParams> = {
  ops: ['BatchNormalization'],
  compile(ctx) {
    const x = input(ctx, 0);
    if (ctx.node.outputs.slice(1).some((o) => o)) opError(ctx.node, 'training-mode outputs are not supported');
    const [n, c, ...rest] = x.shape;
    for (let i = 1; i <= 4; i++) {
      const v = input(ctx, i);
      if (v.shape.length !== 1 || v.shape[0] !== c) opError(ctx.node, `input ${i} must be [${c}]`);
    }
    return {
      params: { n, c, size: rest.reduce((a, b) => a * b, 1), epsilon: attr.float(ctx, 'epsilon', 1e-5) },
      outputs: [{ dtype: x.dtype, shape: x.shape }],
    };
  },
  reference(p, [x, scale, bias, mean, variance], [y]) {
    for (let b = 0; b < p.n; b++) {
      for (let c = 0; c < p.c; c++) {
        const s = scale[c] / Math.sqrt(variance[c] + p.epsilon);
        const t = bias[c] - mean[c] * s;
        const o = (b * p.c + c) * p.size;
        for (let i = 0; i < p.size; i++) y[o + i] = x[o + i] * s + t;
      }
    }
  },
};

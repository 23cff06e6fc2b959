/** BatchNormalization in inference form: y = (x - mean) / sqrt(var + eps) * scale + bias, per
 *  channel (axis 1). Folded into a preceding Conv/Gemm where possible (passes/transforms). */
import type { TensorData } from '../graph/ir.js';
import { attr, input, kernelFn, opError, upload, type OpModule } from './op.js';

export interface BatchNormParams { n: number; c: number; size: number; epsilon: number }

export const batchNorm: OpModule<BatchNormParams> = {
  ops: ['BatchNormalization'],
  changesPrecision: true,
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
    const { s, t } = batchNormAffine(scale, bias, mean, variance, p.epsilon);
    for (let b = 0; b < p.n; b++) {
      for (let c = 0; c < p.c; c++) {
        const o = (b * p.c + c) * p.size;
        for (let i = 0; i < p.size; i++) y[o + i] = x[o + i] * s[c] + t[c];
      }
    }
  },
  kernel(p, env) {
    const [scale, bias, mean, variance] = env.inputs.slice(1, 5).map((v) => v?.value?.data);
    if (!scale || !bias || !mean || !variance) return undefined;
    const { s, t } = batchNormAffine(scale, bias, mean, variance, p.epsilon);
    const [sp, tp] = [upload(env, Float32Array.from(s)), upload(env, Float32Array.from(t))];
    const f = kernelFn(env, 'scale_shift_f32_channels');
    return ([x], [y]) => f(x, y, p.n, p.c, p.size, sp, tp);
  },
};

/** The per-channel y = x * s + t that the op computes (also what folding it into a layer, or
 *  giving it the device's BatchNorm-layer form, uses). */
export function batchNormAffine(scale: TensorData, bias: TensorData, mean: TensorData, variance: TensorData, epsilon: number): { s: number[]; t: number[] } {
  const s = Array.from(scale, (g, c) => g / Math.sqrt(variance[c] + epsilon));
  return { s, t: s.map((sc, c) => bias[c] - mean[c] * sc) };
}

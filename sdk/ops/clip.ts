/** Clip: min/max as attributes before opset 11, as optional constant inputs from 11 on. */
import { activationFixed } from './fixed.js';
import { ACT, activationKernel, attr, constInput, input, numel, type OpModule } from './op.js';

export interface ClipParams { min: number; max: number; n: number }

export const clip: OpModule<ClipParams> = {
  ops: ['Clip'],
  compile(ctx) {
    const x = input(ctx, 0);
    let min: number, max: number;
    if (ctx.opset < 11) {
      min = attr.float(ctx, 'min', -Infinity);
      max = attr.float(ctx, 'max', Infinity);
    } else {
      min = constInput(ctx, 1, 'min')?.[0] ?? -Infinity;
      max = constInput(ctx, 2, 'max')?.[0] ?? Infinity;
    }
    return { params: { min, max, n: numel(x.shape) }, outputs: [{ dtype: x.dtype, shape: x.shape }] };
  },
  reference({ min, max }, [x], [y]) {
    for (let i = 0; i < y.length; i++) y[i] = Math.min(max, Math.max(min, x[i]));
  },
  activation: (p) => ({ code: ACT.CLAMP, p0: p.min, p1: p.max }),
  clip: (p) => ({ min: p.min, max: p.max }),
  kernel(p, env) {
    return activationKernel(env, { code: ACT.CLAMP, p0: p.min, p1: p.max }, p.n);
  },
};

/** Fixed point: saturation at the clip bounds (fused into the layer before it when possible). */
clip.fixed = activationFixed(clip);

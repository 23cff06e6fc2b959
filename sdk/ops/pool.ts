/** MaxPool and AveragePool (2-D, or 1-D as 2-D): pads, auto_pad, ceil_mode, dilations,
 *  count_include_pad. */
import { attr, input, kernelFn, opError, type CompileContext, type OpModule } from './op.js';
import { convAxis, spatialAttrs } from './conv.js';

export interface PoolParams {
  max: boolean;
  n: number; c: number; h: number; w: number; oh: number; ow: number;
  kh: number; kw: number; sh: number; sw: number; dh: number; dw: number;
  pt: number; pl: number; pb: number; pr: number;
  countIncludePad: boolean;
}

/** Output size along one axis; ceil_mode drops a last window that would start in the end pad. */
function poolAxis(ctx: CompileContext, autoPad: string, ceil: boolean, size: number, k: number, s: number, d: number, pb: number, pe: number) {
  if (!ceil || autoPad !== 'NOTSET') return convAxis(ctx, autoPad, size, k, s, d, pb, pe);
  const ek = (k - 1) * d + 1;
  let out = Math.ceil((size + pb + pe - ek) / s) + 1;
  if ((out - 1) * s >= size + pb) out--;
  return { out, begin: pb, end: pe };
}

export const pool: OpModule<PoolParams> = {
  ops: ['MaxPool', 'AveragePool'],
  compile(ctx) {
    const x = input(ctx, 0);
    const rank = x.shape.length;
    if (rank !== 3 && rank !== 4) opError(ctx.node, `input must be 3-D or 4-D, got [${x.shape}]`);
    if (ctx.node.outputs.length > 1 && ctx.node.outputs[1]) opError(ctx.node, 'the Indices output is not supported');
    const kernel = attr.ints(ctx, 'kernel_shape');
    if (!kernel) opError(ctx.node, 'kernel_shape is required');
    const s = spatialAttrs(ctx, rank - 2, kernel);
    const ceil = attr.int(ctx, 'ceil_mode', 0) !== 0;
    const [n, c] = x.shape;
    const h = rank === 4 ? x.shape[2] : 1;
    const w = x.shape[rank - 1];
    const [kh, kw] = s.kernel;
    const [sh, sw] = s.strides;
    const [dh, dw] = s.dilations;
    const ay = poolAxis(ctx, s.autoPad, ceil, h, kh, sh, dh, s.pads[0], s.pads[2]);
    const ax = poolAxis(ctx, s.autoPad, ceil, w, kw, sw, dw, s.pads[1], s.pads[3]);
    if (ay.out <= 0 || ax.out <= 0) opError(ctx.node, `the window does not fit the input [${x.shape}]`);
    const params: PoolParams = {
      max: ctx.node.op === 'MaxPool', n, c, h, w, oh: ay.out, ow: ax.out, kh, kw, sh, sw, dh, dw,
      pt: ay.begin, pl: ax.begin, pb: ay.end, pr: ax.end,
      countIncludePad: attr.int(ctx, 'count_include_pad', 0) !== 0,
    };
    const shape = rank === 4 ? [n, c, ay.out, ax.out] : [n, c, ax.out];
    return { params, outputs: [{ dtype: x.dtype, shape }] };
  },
  reference(p, [x], [y]) {
    for (let plane = 0; plane < p.n * p.c; plane++) {
      const xo = plane * p.h * p.w;
      for (let oy = 0; oy < p.oh; oy++) {
        for (let ox = 0; ox < p.ow; ox++) {
          let acc = p.max ? -Infinity : 0;
          let count = 0;
          for (let ky = 0; ky < p.kh; ky++) {
            const iy = oy * p.sh - p.pt + ky * p.dh;
            for (let kx = 0; kx < p.kw; kx++) {
              const ix = ox * p.sw - p.pl + kx * p.dw;
              const inside = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
              if (inside) {
                const v = x[xo + iy * p.w + ix];
                acc = p.max ? Math.max(acc, v) : acc + v;
                count++;
              } else if (p.countIncludePad && iy < p.h + p.pb && ix < p.w + p.pr) {
                count++; // pads count, the ceil_mode overhang does not
              }
            }
          }
          y[(plane * p.oh + oy) * p.ow + ox] = p.max ? acc : acc / count;
        }
      }
    }
  },
  kernel(p, env) {
    const f = kernelFn(env, 'pool_f32_simd');
    return ([x], [y]) => f(
      x, y, p.n * p.c, p.h, p.w, p.oh, p.ow, p.kh, p.kw, p.sh, p.sw, p.dh, p.dw, p.pt, p.pl, p.pb, p.pr,
      +p.max, +p.countIncludePad,
    );
  },
};

export interface GlobalPoolParams { max: boolean; planes: number; size: number }

export const globalPool: OpModule<GlobalPoolParams> = {
  ops: ['GlobalAveragePool', 'GlobalMaxPool'],
  compile(ctx) {
    const x = input(ctx, 0);
    if (x.shape.length < 3) opError(ctx.node, `input must have spatial dims, got [${x.shape}]`);
    const [n, c, ...spatial] = x.shape;
    const size = spatial.reduce((a, b) => a * b, 1);
    return {
      params: { max: ctx.node.op === 'GlobalMaxPool', planes: n * c, size },
      outputs: [{ dtype: x.dtype, shape: [n, c, ...spatial.map(() => 1)] }],
    };
  },
  reference(p, [x], [y]) {
    for (let i = 0; i < p.planes; i++) {
      let acc = p.max ? -Infinity : 0;
      for (let j = 0; j < p.size; j++) acc = p.max ? Math.max(acc, x[i * p.size + j]) : acc + x[i * p.size + j];
      y[i] = p.max ? acc : acc / p.size;
    }
  },
  kernel(p, env) {
    const f = kernelFn(env, 'global_pool_f32_simd');
    return ([x], [y]) => f(x, y, p.planes, p.size, +p.max);
  },
};

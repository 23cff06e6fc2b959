/** MaxPool and AveragePool (2-D, or 1-D as 2-D): pads, auto_pad, ceil_mode, dilations,
 *  count_include_pad. */
import type { TensorData } from '../graph/ir.js';
import { FRACTION_BITS, avgPoolMultiplier, layerBits, maxShift, roundShift, saturate, type Bits, type TensorQ } from '../device/spec.js';
import { convAxis, spatialAttrs } from './conv.js';
import { checkAccumulator, checkLimits, describeRescale, formatChange, inputQ, maxAbs, qCode, rescaleLimits, type Rescale } from './fixed.js';
import {
  attr, geometryBlock, input, kernelFn, opError, upload, type CompileContext, type FixedOp, type Geometry, type LimitContext, type OpModule,
  type ScaleLimits,
} from './op.js';

export interface PoolParams {
  max: boolean;
  n: number; c: number; h: number; w: number; oh: number; ow: number;
  kh: number; kw: number; sh: number; sw: number; dh: number; dw: number;
  pt: number; pl: number; pb: number; pr: number;
  countIncludePad: boolean;
}

/** The kernels' geometry block of a pooling: every plane is its own group. */
function poolGeometry(p: PoolParams): Geometry {
  return { ...p, m: p.c, group: p.c };
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
  changesPrecision: (node) => node.op === 'AveragePool',
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
    poolWindows(p, x, y, p.max ? (acc) => acc : (acc, count) => acc / count);
  },
  kernel(p, env) {
    const count = (o: number, s: number, pad: number, k: number, d: number, size: number, end: number) => axisCount(p, o, s, pad, k, d, size, end);
    const owv = Math.ceil(p.ow / 4) * 4;
    const rowCount = upload(env, Float32Array.from({ length: p.oh }, (_, o) => count(o, p.sh, p.pt, p.kh, p.dh, p.h, p.pb)));
    // Lanes past ow divide by 1 (never stored).
    const colCount = upload(env, Float32Array.from({ length: owv }, (_, o) => (o < p.ow ? count(o, p.sw, p.pl, p.kw, p.dw, p.w, p.pr) : 1)));
    // One input row between borders of the pad value, long enough for the widest vector read.
    const rowLen = Math.ceil((Math.max(p.pl + p.w, Math.max(p.sw, 2) * owv + (p.kw - 1) * p.dw) + 8) / 4) * 4;
    const row = upload(env, new Float32Array(rowLen).fill(p.max ? -Infinity : 0));
    const hbuf = env.alloc(p.h * owv * 4);
    const geom = geometryBlock(env, poolGeometry(p));
    const f = kernelFn(env, 'pool_f32_simd');
    return ([x], [y]) => f(x, y, geom, +p.max, rowCount, colCount, row, hbuf);
  },
};

/**
 * Cells of a window counted by an average along one axis (the reference's count is the product
 * over the axes): inside the input, or inside input + pads with count_include_pad; never the
 * ceil_mode overhang.
 */
function axisCount(p: PoolParams, o: number, s: number, pad: number, k: number, d: number, size: number, end: number): number {
  let n = 0;
  for (let t = 0; t < k; t++) {
    const i = o * s - pad + t * d;
    if (p.countIncludePad ? i < size + end : i >= 0 && i < size) n++;
  }
  return n;
}

/** The smallest and largest count of an average's windows. */
function windowCounts(p: PoolParams): { min: number; max: number } {
  const along = (out: number, s: number, pad: number, k: number, d: number, size: number, end: number) => {
    const c = Array.from({ length: out }, (_, o) => axisCount(p, o, s, pad, k, d, size, end));
    return [Math.min(...c), Math.max(...c)];
  };
  const [ry, Ry] = along(p.oh, p.sh, p.pt, p.kh, p.dh, p.h, p.pb);
  const [rx, Rx] = along(p.ow, p.sw, p.pl, p.kw, p.dw, p.w, p.pr);
  return { min: Math.max(1, ry * rx), max: Ry * Rx };
}

/** Walk every window: acc is the max or the sum of the values inside, count how many count. */
function poolWindows(p: PoolParams, x: TensorData, y: TensorData, finish: (acc: number, count: number) => number): void {
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
        y[(plane * p.oh + oy) * p.ow + ox] = finish(acc, count);
      }
    }
  }
}

export interface GlobalPoolParams { max: boolean; planes: number; size: number }

export const globalPool: OpModule<GlobalPoolParams> = {
  ops: ['GlobalAveragePool', 'GlobalMaxPool'],
  changesPrecision: (node) => node.op === 'GlobalAveragePool',
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
    globalWindows(p, x, y, p.max ? (acc) => acc : (acc, count) => acc / count);
  },
  kernel(p, env) {
    const f = kernelFn(env, 'global_pool_f32_simd');
    return ([x], [y]) => f(x, y, p.planes, p.size, +p.max);
  },
};

function globalWindows(p: GlobalPoolParams, x: TensorData, y: TensorData, finish: (acc: number, count: number) => number): void {
  for (let i = 0; i < p.planes; i++) {
    let acc = p.max ? -Infinity : 0;
    for (let j = 0; j < p.size; j++) acc = p.max ? Math.max(acc, x[i * p.size + j]) : acc + x[i * p.size + j];
    y[i] = finish(acc, p.size);
  }
}

/**
 * Fixed point of the pools. Max: the largest integer of the window, requantized if the output
 * format differs. Average: the window sum times 1/count as an F-significant-bit multiplier m at
 * shift F + s, sat(roundShift(sum * m, F + s + in - out)) (spec.ts avgPoolMultiplier).
 */
export interface PoolFixed<P> { p: P; max: boolean; bits: Bits; n: number; rescale: Rescale; xq: TensorQ; yq: TensorQ; count: number }

function poolFixed<P extends { max: boolean }>(
  walk: (p: P, x: TensorData, y: TensorData, finish: (acc: number, count: number) => number) => void,
  windowCounts: (p: P) => { min: number; max: number },
  kernel?: FixedOp<P, PoolFixed<P>>['kernel'],
): FixedOp<P, PoolFixed<P>> {
  // sum * m <= max|x| * count * (2^(F+s) / count + 1/2) <= max|x| * count * (2^F + 1/2)
  const sumBound = (xq: TensorQ, count: number, bits: Bits) => maxAbs(xq) * count * (2 ** FRACTION_BITS.avgPool[bits] + 0.5);
  const limits = (ctx: LimitContext<P>): ScaleLimits => {
    const [xq, yq] = [inputQ(ctx, 0), ctx.outQ[0]];
    const bits = layerBits(xq.bits, yq.bits);
    if (ctx.params.max) return rescaleLimits(xq, bits);
    // Each window shifts right by F + s + in - out (s = floor(log2 count)), never left.
    const counts = windowCounts(ctx.params);
    const sMin = avgPoolMultiplier(counts.min, bits).shift, sMax = avgPoolMultiplier(counts.max, bits).shift;
    const n = maxShift(bits, sumBound(xq, counts.max, bits));
    return {
      finest: xq.scaleLog2 + sMin, finestReason: `the window sums times 1/count at 2^(${xq.scaleLog2} + ${sMin}): the device cannot shift left`,
      coarsest: xq.scaleLog2 + sMax - n, coarsestReason: `a right shift of at most ${n}`,
    };
  };
  return {
    kernel,
    limits,
    compile(ctx) {
      checkLimits(ctx, limits(ctx));
      const [xq, yq] = [inputQ(ctx, 0), ctx.outQ[0]];
      const bits = layerBits(xq.bits, yq.bits);
      const rescale = formatChange(xq, yq, ctx.bounds[0]);
      // n: in - out; each window adds its reciprocal's shift.
      const n = xq.scaleLog2 - yq.scaleLog2;
      if (!ctx.params.max) {
        const count = windowCounts(ctx.params).max;
        const { shift } = avgPoolMultiplier(count, bits);
        checkAccumulator(ctx.node, sumBound(xq, count, bits) + (n + shift > 0 ? 2 ** (n + shift - 1) : 0), bits, 'the window sum');
      }
      return { p: ctx.params, max: ctx.params.max, bits, n, rescale, xq, yq, count: windowCounts(ctx.params).max };
    },
    // Max: the window's largest integer rescaled. Average: y = sat(roundShift(sum * multiplier,
    // shift)) for a full window; a window with fewer elements (padding excluded) has its own
    // multiplier round(2^reciprocalShift / count) and shift, from the same rule.
    describe(f) {
      if (f.max) return describeRescale(f.rescale);
      const { m, shift } = avgPoolMultiplier(f.count, f.bits);
      return { windowCount: f.count, multiplier: m, reciprocalShift: shift, shift: shift + f.n, saturate: [f.rescale.lo, f.rescale.hi] };
    },
    reference(f, [x], [y]) {
      const { lo, hi } = f.rescale;
      walk(f.p, x, y, f.max
        ? (acc) => saturate(roundShift(acc * f.rescale.k, f.rescale.n), lo, hi)
        : (sum, count) => {
          const { m, shift } = avgPoolMultiplier(count, f.bits);
          return saturate(roundShift(sum * m, shift + f.n), lo, hi);
        });
    },
  };
}

pool.fixed = poolFixed(poolWindows, windowCounts, (f, env) => {
  if (!f.max) return undefined;
  const p = f.p;
  const k = kernelFn(env, 'maxpool_q');
  const tmp = env.scratch(p.h * p.ow * 4);
  const { k: mul, n, lo, hi } = f.rescale;
  const geom = geometryBlock(env, poolGeometry(p));
  return ([x], [y]) => k(x, qCode(f.xq), geom, mul, n, lo, hi, y, qCode(f.yq), tmp.ptr);
});
globalPool.fixed = poolFixed(globalWindows, (p) => ({ min: p.size, max: p.size }), (f, env) => {
  if (f.max) return undefined;
  const k = kernelFn(env, 'global_avgpool_q');
  const { m, shift } = avgPoolMultiplier(f.p.size, f.bits);
  return ([x], [y]) => k(x, qCode(f.xq), f.p.planes, f.p.size, m, shift + f.n, f.rescale.lo, f.rescale.hi, y, qCode(f.yq));
});

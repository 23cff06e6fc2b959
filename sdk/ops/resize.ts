/**
 * Resize (opsets 10-19) and Upsample (7-9): nearest and (bi)linear, on any axes for nearest and on
 * the two innermost axes for linear. Upsample and opset-10 Resize use asymmetric coordinates and
 * the "simple" nearest rule (floor when enlarging, ceil when shrinking), as ONNX Runtime does.
 */
import { moveFixed } from './fixed.js';
import {
  BY_WIDTH, attr, checkOutputShape, constInput, input, kernelFn, opError, strides, upload, type CompileContext, type KernelCall, type MoveEnv, type OpModule,
} from './op.js';

type CoordMode = 'half_pixel' | 'half_pixel_symmetric' | 'pytorch_half_pixel' | 'align_corners' | 'asymmetric' | 'tf_half_pixel_for_nn';
type NearestMode = 'round_prefer_floor' | 'round_prefer_ceil' | 'floor' | 'ceil' | 'simple';

export interface ResizeParams {
  linear: boolean;
  inShape: number[];
  outShape: number[];
  /** Per axis, for every output coordinate: source index (nearest) or the two taps and the
   *  weight of the second (linear). Precomputed so that the kernels only gather. */
  index: Int32Array[];
  index1: Int32Array[];
  frac: Float32Array[];
}

const COORD_MODES: CoordMode[] = ['half_pixel', 'half_pixel_symmetric', 'pytorch_half_pixel', 'align_corners', 'asymmetric', 'tf_half_pixel_for_nn'];
const NEAREST_MODES: NearestMode[] = ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil'];

function toOriginal(mode: CoordMode, x: number, scale: number, inLen: number, outLen: number): number {
  switch (mode) {
    case 'half_pixel': return (x + 0.5) / scale - 0.5;
    case 'half_pixel_symmetric': {
      const adj = outLen / (scale * inLen);
      return (inLen / 2) * (1 - adj) + (x + 0.5) / scale - 0.5;
    }
    case 'pytorch_half_pixel': return outLen > 1 ? (x + 0.5) / scale - 0.5 : 0;
    case 'align_corners': return outLen === 1 ? 0 : (x * (inLen - 1)) / (outLen - 1);
    case 'asymmetric': return x / scale;
    case 'tf_half_pixel_for_nn': return (x + 0.5) / scale;
  }
}

function nearest(mode: NearestMode, x: number, scale: number): number {
  switch (mode) {
    case 'round_prefer_floor': return x === Math.floor(x) + 0.5 ? Math.floor(x) : Math.round(x);
    case 'round_prefer_ceil': return Math.round(x);
    case 'floor': return Math.floor(x);
    case 'ceil': return Math.ceil(x);
    case 'simple': return scale < 1 ? Math.ceil(x) : Math.trunc(x);
  }
}

function readScalesAndSizes(ctx: CompileContext, rank: number): { scales?: number[]; sizes?: number[] } {
  if (ctx.node.op === 'Upsample') {
    return { scales: ctx.opset < 9 ? attr.ints(ctx, 'scales') : constInput(ctx, 1, 'scales') };
  }
  if (ctx.opset < 11) return { scales: constInput(ctx, 1, 'scales') };
  const scales = constInput(ctx, 2, 'scales');
  const sizes = constInput(ctx, 3, 'sizes');
  const axes = attr.ints(ctx, 'axes');
  if (!axes) return { scales, sizes };
  // Opset 18 axes: expand the partial lists to full rank.
  const full = (v: number[] | undefined, fill: (a: number) => number) =>
    v && Array.from({ length: rank }, (_, a) => {
      const j = axes.findIndex((x) => (x < 0 ? x + rank : x) === a);
      return j >= 0 ? v[j] : fill(a);
    });
  const x = input(ctx, 0);
  return { scales: full(scales, () => 1), sizes: full(sizes, (a) => x.shape[a]) };
}

export const resize: OpModule<ResizeParams> = {
  ops: ['Resize', 'Upsample'],
  movesData: (node) => (node.attrs.mode?.value ?? 'nearest') === 'nearest',
  compile(ctx) {
    const x = input(ctx, 0);
    const rank = x.shape.length;
    const mode = attr.string(ctx, 'mode', 'nearest');
    const linear = mode === 'linear' || mode === 'bilinear';
    if (!linear && mode !== 'nearest') opError(ctx.node, `mode "${mode}" is not supported (nearest and linear are)`);
    if (attr.int(ctx, 'antialias', 0)) opError(ctx.node, 'antialias is not supported');
    const simple = ctx.node.op === 'Upsample' || ctx.opset < 11;
    const coord = (simple ? 'asymmetric' : attr.string(ctx, 'coordinate_transformation_mode', 'half_pixel')) as CoordMode;
    if (!COORD_MODES.includes(coord)) opError(ctx.node, `coordinate_transformation_mode "${coord}" is not supported`);
    const nearestMode = (simple ? 'simple' : attr.string(ctx, 'nearest_mode', 'round_prefer_floor')) as NearestMode;
    if (!simple && !NEAREST_MODES.includes(nearestMode)) opError(ctx.node, `nearest_mode "${nearestMode}" is not supported`);
    if (attr.string(ctx, 'keep_aspect_ratio_policy', 'stretch') !== 'stretch') opError(ctx.node, 'keep_aspect_ratio_policy must be "stretch"');

    const { scales, sizes } = readScalesAndSizes(ctx, rank);
    let outShape: number[];
    let scale: number[];
    if (sizes) {
      outShape = sizes;
      scale = sizes.map((s, a) => s / x.shape[a]);
    } else if (scales) {
      scale = scales;
      outShape = x.shape.map((d, a) => Math.floor(d * scales[a]));
    } else {
      opError(ctx.node, 'either scales or sizes must be given');
    }
    if (outShape.length !== rank || outShape.some((d) => !(d > 0))) opError(ctx.node, `invalid output shape [${outShape}]`);
    checkOutputShape(ctx, outShape);
    if (linear && x.shape.some((d, a) => a < rank - 2 && d !== outShape[a])) {
      opError(ctx.node, 'linear resize is supported on the two innermost axes only');
    }
    const index: Int32Array[] = [], index1: Int32Array[] = [], frac: Float32Array[] = [];
    for (let a = 0; a < rank; a++) {
      const inLen = x.shape[a], outLen = outShape[a];
      const i0 = new Int32Array(outLen), i1 = new Int32Array(outLen), f = new Float32Array(outLen);
      for (let o = 0; o < outLen; o++) {
        const src = inLen === outLen ? o : toOriginal(coord, o, scale[a], inLen, outLen);
        if (linear) {
          const c = Math.min(Math.max(src, 0), inLen - 1);
          i0[o] = Math.floor(c);
          i1[o] = Math.min(i0[o] + 1, inLen - 1);
          f[o] = c - i0[o];
        } else {
          i0[o] = Math.min(Math.max(inLen === outLen ? o : nearest(nearestMode, src, scale[a]), 0), inLen - 1);
        }
      }
      index.push(i0); index1.push(i1); frac.push(f);
    }
    return { params: { linear, inShape: x.shape, outShape, index, index1, frac }, outputs: [{ dtype: x.dtype, shape: outShape }] };
  },
  reference(p, [x], [y]) {
    const rank = p.outShape.length;
    const s = strides(p.inShape);
    const os = strides(p.outShape);
    for (let k = 0; k < y.length; k++) {
      const coord = p.outShape.map((d, a) => Math.floor(k / os[a]) % d);
      if (!p.linear) {
        y[k] = x[coord.reduce((acc, c, a) => acc + p.index[a][c] * s[a], 0)];
        continue;
      }
      let base = 0;
      for (let a = 0; a < rank - 2; a++) base += coord[a] * s[a];
      const hy = rank - 2, wx = rank - 1;
      const y0 = p.index[hy][coord[hy]], y1 = p.index1[hy][coord[hy]], fy = p.frac[hy][coord[hy]];
      const x0 = p.index[wx][coord[wx]], x1 = p.index1[wx][coord[wx]], fx = p.frac[wx][coord[wx]];
      const at = (r: number, c: number) => x[base + r * s[hy] + c];
      const top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx;
      const bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx;
      y[k] = top * (1 - fy) + bottom * fy;
    }
  },
  kernel(p, env) {
    if (!p.linear) return nearestKernel(p, { ...env, bytes: 4 });
    const rank = p.inShape.length;
    if (!planar(p)) return undefined;
    const [h, w] = p.inShape.slice(-2), [oh, ow] = p.outShape.slice(-2);
    const planes = p.inShape.slice(0, -2).reduce((a, b) => a * b, 1);
    const iy = upload(env, p.index[rank - 2]);
    const ix = upload(env, p.index[rank - 1]);
    const iy1 = upload(env, p.index1[rank - 2]);
    const ix1 = upload(env, p.index1[rank - 1]);
    const [fy, fx] = [p.frac[rank - 2], p.frac[rank - 1]].map((t) => upload(env, t));
    const rows = env.alloc(2 * Math.ceil(ow / 4) * 16);
    const f = kernelFn(env, 'resize_f32_bilinear');
    return ([x], [y]) => f(x, y, planes, h, w, oh, ow, iy, iy1, fy, ix, ix1, fx, rows);
  },
};

/** Kernels resize the two innermost axes of planes; other axes must keep their size. */
function planar(p: ResizeParams): boolean {
  const rank = p.inShape.length;
  return rank >= 2 && p.inShape.every((d, a) => a >= rank - 2 || d === p.outShape[a]);
}

/** Nearest: a gather of elements of `env.bytes` bytes. */
function nearestKernel(p: ResizeParams, env: MoveEnv): KernelCall | undefined {
  if (!planar(p)) return undefined;
  const rank = p.inShape.length;
  const [h, w] = p.inShape.slice(-2), [oh, ow] = p.outShape.slice(-2);
  const planes = p.inShape.slice(0, -2).reduce((a, b) => a * b, 1);
  const iy = upload(env, p.index[rank - 2]);
  const ix = upload(env, p.index[rank - 1]);
  const f = kernelFn(env, BY_WIDTH.resize[env.bytes]);
  return ([x], [y]) => f(x, y, planes, h, w, oh, ow, iy, ix);
}

/** Fixed point: nearest resize moves integers; linear weights have no documented device form
 *  (float fallback). */
const resizeMove = moveFixed(resize, undefined, nearestKernel);
resize.fixed = {
  ...resizeMove,
  limits: (ctx) => (ctx.params.linear ? undefined : resizeMove.limits!(ctx)),
  compile: (ctx) => (ctx.params.linear ? undefined : resizeMove.compile(ctx)),
};

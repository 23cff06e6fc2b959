/** Conv (2-D; 1-D convs are run as 2-D with height 1): grouped, depthwise, dilated, strided,
 *  asymmetric pads and auto_pad. */
import type { TensorData } from '../graph/ir.js';
import { allocI16, bytesOf, layerBuffers, packPairWeights, pairPacker, pairs16, qCode, weightFixed, type WeightFixed } from './fixed.js';
import {
  NO_ACTIVATION, attr, checkRank, geometryBlock, input, kernelFn, opError, upload, type CompileContext, type FixedKernelEnv, type KernelCall, type KernelEnv,
  type OpModule,
} from './op.js';

export interface ConvParams {
  n: number; c: number; h: number; w: number;
  /** Output channels, output height and width. */
  m: number; oh: number; ow: number;
  kh: number; kw: number;
  sh: number; sw: number;
  dh: number; dw: number;
  /** Pads: top, left, bottom, right. */
  pt: number; pl: number; pb: number; pr: number;
  group: number;
  hasBias: boolean;
  /** Rank of the original tensors (3 for Conv1d). */
  rank: number;
}

/** Output size and begin/end pads along one spatial axis, following ONNX auto_pad rules. */
export function convAxis(
  ctx: CompileContext, autoPad: string, size: number, k: number, s: number, d: number, padBegin: number, padEnd: number,
): { out: number; begin: number; end: number } {
  const ek = (k - 1) * d + 1;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const out = Math.ceil(size / s);
    const total = Math.max(0, (out - 1) * s + ek - size);
    const small = Math.floor(total / 2);
    const begin = autoPad === 'SAME_UPPER' ? small : total - small;
    return { out, begin, end: total - begin };
  }
  if (autoPad === 'VALID') return { out: Math.floor((size - ek) / s) + 1, begin: 0, end: 0 };
  if (autoPad !== 'NOTSET') opError(ctx.node, `unknown auto_pad "${autoPad}"`);
  const out = Math.floor((size + padBegin + padEnd - ek) / s) + 1;
  return { out, begin: padBegin, end: padEnd };
}

/** Largest kernel size, stride, dilation or pad accepted (far beyond any real CNN). */
export const MAX_SPATIAL = 1 << 16;

/** The attributes Conv, ConvTranspose and the pooling ops share, validated, normalized to 2-D. */
export function spatialAttrs(ctx: CompileContext, spatialRank: number, kernel: number[]) {
  if (spatialRank !== 1 && spatialRank !== 2) opError(ctx.node, `only 1-D and 2-D spatial ops are supported (got ${spatialRank}-D)`);
  // Bounded: kernels size their scratch rows by these, so a corrupt value must not reach them.
  const ints = (name: string, v: number[], length: number, min: number) => {
    if (v.length !== length || v.some((d) => !Number.isInteger(d) || d < min || d > MAX_SPATIAL)) {
      opError(ctx.node, `${name} must be ${length} integers from ${min} to ${MAX_SPATIAL}, got [${v}]`);
    }
    return v;
  };
  const two = (name: string, d: number) => {
    const a = ints(name, attr.ints(ctx, name) ?? new Array(spatialRank).fill(d), spatialRank, 1);
    return spatialRank === 1 ? [1, a[0]] : a;
  };
  ints('kernel_shape', kernel, spatialRank, 1);
  const pads = ints('pads', attr.ints(ctx, 'pads') ?? new Array(2 * spatialRank).fill(0), 2 * spatialRank, 0);
  const [pt, pl, pb, pr] = spatialRank === 1 ? [0, pads[0], 0, pads[1]] : pads;
  return {
    kernel: spatialRank === 1 ? [1, kernel[0]] : kernel,
    strides: two('strides', 1),
    dilations: two('dilations', 1),
    pads: [pt, pl, pb, pr],
    autoPad: attr.string(ctx, 'auto_pad', 'NOTSET'),
  };
}

/** The group attribute: a positive integer. */
export function groupAttr(ctx: CompileContext): number {
  const group = attr.int(ctx, 'group', 1);
  if (!Number.isInteger(group) || group < 1) opError(ctx.node, `group must be a positive integer, got ${group}`);
  return group;
}

/** A 1x1 conv whose output is its input's grid: the kernels then read the input planes in place. */
function isPointwise(p: ConvParams): boolean {
  return p.kh === 1 && p.kw === 1 && p.sh === 1 && p.sw === 1 && p.pt === 0 && p.pl === 0 && p.oh === p.h && p.ow === p.w;
}

/** Rows of W (one per output channel, `k` values each) packed per group in blocks of 4 rows,
 *  k-major, zero rows completing the last block: the left operand of gemm_f32_packed_simd. */
function packRowBlocks(wt: TensorData, groups: number, mg: number, k: number): Float32Array {
  const mgPad = Math.ceil(mg / 4) * 4;
  const out = new Float32Array(groups * mgPad * k);
  for (let g = 0; g < groups; g++) {
    for (let r = 0; r < mg; r++) {
      const src = (g * mg + r) * k;
      const dst = (g * mgPad + (r & ~3)) * k + (r & 3);
      for (let i = 0; i < k; i++) out[dst + 4 * i] = wt[src + i];
    }
  }
  return out;
}

/** Bias per group padded to a multiple of 4 (zeros where absent). */
function packBias(bias: TensorData | undefined, groups: number, mg: number): Float32Array {
  const mgPad = Math.ceil(mg / 4) * 4;
  const out = new Float32Array(groups * mgPad);
  if (bias) for (let g = 0; g < groups; g++) for (let r = 0; r < mg; r++) out[g * mgPad + r] = bias[g * mg + r];
  return out;
}

/** im2col block: enough columns to keep the panel near 64 KiB, a multiple of 8. */
function panelColumns(k: number, n: number): number {
  return Math.min(Math.ceil(n / 8) * 8, Math.max(8, Math.floor(16384 / k / 8) * 8));
}

function bindDepthwise(p: ConvParams, env: KernelEnv, wt: TensorData, bias: TensorData | undefined): KernelCall {
  const { code, p0, p1 } = env.activation ?? NO_ACTIVATION;
  const taps = p.kh * p.kw;
  const is3x3 = p.kh === 3 && p.kw === 3;
  const s1 = is3x3 && p.sh === 1 && p.sw === 1 && p.dh === p.dw;
  const s2 = is3x3 && p.sh === 2 && p.sw === 2 && p.dh === 1 && p.dw === 1;
  // The 3x3 kernels read 16 floats per channel; the generic one (any other 3x3, e.g. PP-OCR's
  // stride (2,1)) reads taps + bias rounded up to 4.
  const per = s1 || s2 ? 16 : Math.ceil((taps + 1) / 4) * 4;
  const packed = new Float32Array(p.c * per);
  for (let ch = 0; ch < p.c; ch++) {
    for (let t = 0; t < taps; t++) packed[ch * per + t] = wt[ch * taps + t];
    packed[ch * per + taps] = bias ? bias[ch] : 0;
  }
  const wp = upload(env, packed);
  // A zero-bordered copy of one plane, large enough for every vector read of the last outputs
  // (strided loads read up to 8 floats from each tap).
  const owv = Math.ceil(p.ow / 4) * 4;
  const rowLen = Math.ceil((Math.max(p.pl + p.w, Math.max(p.sw, 2) * owv + (p.kw - 1) * p.dw) + 8) / 4) * 4;
  const padRows = Math.max(p.pt + p.h, (p.oh - 1) * p.sh + (p.kh - 1) * p.dh + 1);
  const pad = env.alloc(padRows * rowLen * 4);
  const geom = geometryBlock(env, p);
  const s = p.sh;
  if (is3x3 && p.sw === s && p.dh === p.dw && (s === 1 || (s === 2 && p.dh === 1))) {
    const f = kernelFn(env, 'conv_f32_dw3x3_simd');
    return ([x], [y]) => f(x, wp, y, geom, pad, rowLen, code, p0, p1);
  }
  if (p.kh === 5 && p.kw === 5 && p.sh === 1 && p.sw === 1 && p.dh === 1 && p.dw === 1) {
    const f5 = kernelFn(env, 'conv_f32_dw5x5_simd');
    return ([x], [y]) => f5(x, wp, y, geom, pad, rowLen, code, p0, p1);
  }
  const f = kernelFn(env, 'conv_f32_dw_simd');
  return ([x], [y]) => f(x, wp, y, geom, pad, rowLen, code, p0, p1);
}

/** 3x3 stride-1 convs with enough channels that the transforms are small beside the products
 *  run by Winograd's F(2x2, 3x3) (conv_f32_winograd_simd). */
export function winograd(p: ConvParams): boolean {
  return p.group === 1 && p.kh === 3 && p.kw === 3 && p.sh === 1 && p.sw === 1 && p.dh === 1 && p.dw === 1 && p.c >= 16 && p.m >= 16;
}

/** U = G g G^T per (output, input) channel pair, in float64, packed per transform position q as
 *  packRowBlocks packs a weight matrix: [16][ceil(m/4)][c][4]. */
export function winogradWeights(wt: TensorData, m: number, c: number): Float32Array {
  const mPad = Math.ceil(m / 4) * 4;
  const out = new Float32Array(16 * mPad * c);
  const gg = new Float64Array(12);
  for (let oc = 0; oc < m; oc++) {
    for (let ic = 0; ic < c; ic++) {
      const g = (r: number, k: number) => wt[((oc * c + ic) * 3 + r) * 3 + k];
      // G g: rows g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2.
      for (let k = 0; k < 3; k++) {
        gg[k] = g(0, k);
        gg[3 + k] = (g(0, k) + g(1, k) + g(2, k)) / 2;
        gg[6 + k] = (g(0, k) - g(1, k) + g(2, k)) / 2;
        gg[9 + k] = g(2, k);
      }
      for (let r = 0; r < 4; r++) {
        const [a, b, d] = [gg[3 * r], gg[3 * r + 1], gg[3 * r + 2]];
        const row = [a, (a + b + d) / 2, (a - b + d) / 2, d];
        for (let j = 0; j < 4; j++) out[(4 * r + j) * mPad * c + (oc & ~3) * c + ic * 4 + (oc & 3)] = row[j];
      }
    }
  }
  return out;
}

function bindWinograd(p: ConvParams, env: KernelEnv, wt: TensorData, bp: number, code: number, p0: number, p1: number): KernelCall {
  const u = upload(env, winogradWeights(wt, p.m, p.c));
  // Tiles per pass: the transforms of both sides (16 x (c + m) x tb floats) within 512 KiB.
  const tw = Math.ceil(p.ow / 2);
  const tb = Math.min(Math.ceil(tw / 8) * 8, Math.max(8, Math.min(64, Math.floor(8192 / (p.c + p.m) / 8) * 8)));
  const bytes = [16 * p.c * tb * 4, 16 * p.m * tb * 4, 4 * (2 * tb + 12) * 4];
  const total = bytes.reduce((a, b) => a + b, 0);
  const scratch = env.scratch ? env.scratch(total) : { ptr: env.alloc(total) };
  const geom = geometryBlock(env, p);
  const f = kernelFn(env, 'conv_f32_winograd_simd');
  return ([x], [y]) => {
    const v = scratch.ptr, mm = v + bytes[0], patch = mm + bytes[1];
    f(x, u, bp, y, v, mm, patch, tb, geom, code, p0, p1);
  };
}

export const conv: OpModule<ConvParams> = {
  ops: ['Conv'],
  fusesActivation: true,
  weights: {
    layout(_p, w) {
      const inner = w.data.length / w.dims[0];
      return { channels: w.dims[0], channelOf: (i) => Math.floor(i / inner) };
    },
    channelAxis: () => 1,
  },
  compile(ctx) {
    const x = input(ctx, 0);
    const wt = input(ctx, 1);
    const rank = x.shape.length;
    if (rank !== 3 && rank !== 4) opError(ctx.node, `input must be 3-D or 4-D, got [${x.shape}]`);
    checkRank(ctx, wt, rank, 'weight');
    const group = groupAttr(ctx);
    const s = spatialAttrs(ctx, rank - 2, attr.ints(ctx, 'kernel_shape') ?? wt.shape.slice(2));
    const [n, c] = x.shape;
    const h = rank === 4 ? x.shape[2] : 1;
    const w = x.shape[rank - 1];
    const m = wt.shape[0];
    const [kh, kw] = rank === 4 ? wt.shape.slice(2) : [1, wt.shape[2]];
    if (kh !== s.kernel[0] || kw !== s.kernel[1]) opError(ctx.node, 'kernel_shape does not match the weight');
    if (c !== wt.shape[1] * group || m % group !== 0) {
      opError(ctx.node, `channels do not match: input [${x.shape}], weight [${wt.shape}], group ${group}`);
    }
    const b = ctx.inputs[2];
    if (b && (b.shape.length !== 1 || b.shape[0] !== m)) opError(ctx.node, `bias must be [${m}], got [${b.shape}]`);
    const [sh, sw] = s.strides;
    const [dh, dw] = s.dilations;
    const ax = convAxis(ctx, s.autoPad, h, kh, sh, dh, s.pads[0], s.pads[2]);
    const aw = convAxis(ctx, s.autoPad, w, kw, sw, dw, s.pads[1], s.pads[3]);
    if (ax.out <= 0 || aw.out <= 0) opError(ctx.node, `the kernel does not fit the input [${x.shape}]`);
    const params: ConvParams = {
      n, c, h, w, m, oh: ax.out, ow: aw.out, kh, kw, sh, sw, dh, dw,
      pt: ax.begin, pl: aw.begin, pb: ax.end, pr: aw.end, group, hasBias: !!b, rank,
    };
    const shape = rank === 4 ? [n, m, ax.out, aw.out] : [n, m, aw.out];
    return { params, outputs: [{ dtype: x.dtype, shape }] };
  },
  reference(p, [x, wt, bias], [y]) {
    const cg = p.c / p.group; // input channels per group
    const mg = p.m / p.group; // output channels per group
    for (let b = 0; b < p.n; b++) {
      for (let oc = 0; oc < p.m; oc++) {
        const g = Math.floor(oc / mg);
        const bv = p.hasBias ? bias[oc] : 0;
        for (let oy = 0; oy < p.oh; oy++) {
          for (let ox = 0; ox < p.ow; ox++) {
            let acc = 0;
            for (let ic = 0; ic < cg; ic++) {
              const xc = (b * p.c + g * cg + ic) * p.h;
              const wc = (oc * cg + ic) * p.kh;
              for (let ky = 0; ky < p.kh; ky++) {
                const iy = oy * p.sh - p.pt + ky * p.dh;
                if (iy < 0 || iy >= p.h) continue;
                for (let kx = 0; kx < p.kw; kx++) {
                  const ix = ox * p.sw - p.pl + kx * p.dw;
                  if (ix < 0 || ix >= p.w) continue;
                  acc += x[(xc + iy) * p.w + ix] * wt[(wc + ky) * p.kw + kx];
                }
              }
            }
            y[((b * p.m + oc) * p.oh + oy) * p.ow + ox] = acc + bv;
          }
        }
      }
    }
  },
  kernel(p, env) {
    const wt = env.inputs[1]?.value?.data;
    const bias = p.hasBias ? env.inputs[2]?.value?.data : undefined;
    if (!wt || (p.hasBias && !bias)) return undefined;
    const cg = p.c / p.group, mg = p.m / p.group, k = cg * p.kh * p.kw;
    // Negative pads (only ConvTranspose's phases make them) go through im2col, which crops.
    if (p.group === p.c && mg === 1 && p.pt >= 0 && p.pl >= 0) return bindDepthwise(p, env, wt, bias);
    const { code, p0, p1 } = env.activation ?? NO_ACTIVATION;
    const bp = upload(env, packBias(bias, p.group, mg));
    if (winograd(p)) return bindWinograd(p, env, wt, bp, code, p0, p1);
    const wp = upload(env, packRowBlocks(wt, p.group, mg, k));
    if (isPointwise(p)) {
      const f = kernelFn(env, 'conv_f32_1x1_simd');
      return ([x], [y]) => f(x, wp, bp, y, p.n, p.group, cg, mg, p.h * p.w, code, p0, p1);
    }
    if (p.sh === 1 && p.sw === 1) {
      const rows = new Int32Array(k);
      for (let ic = 0; ic < cg; ic++) {
        for (let ky = 0; ky < p.kh; ky++) for (let kx = 0; kx < p.kw; kx++) rows[(ic * p.kh + ky) * p.kw + kx] = 4 * ((ic * p.h + ky * p.dh) * p.w + kx * p.dw);
      }
      const rp = upload(env, rows);
      const panel = env.alloc(k * 32);
      const geom = geometryBlock(env, p);
      const f = kernelFn(env, 'conv_f32_shifted_simd');
      return ([x], [y]) => f(x, wp, bp, y, rp, panel, geom, code, p0, p1);
    }
    const nb = panelColumns(k, p.oh * p.ow);
    const panel = env.alloc(k * nb * 4);
    const geom = geometryBlock(env, p);
    const f = kernelFn(env, 'conv_f32_im2col_simd');
    return ([x], [y]) => f(x, wp, bp, y, panel, nb, geom, code, p0, p1);
  },
};

/**
 * Conv kernels in fixed point. 8-bit: depthwise 3x3 (stride 1/2) has its own kernel; every other
 * conv is a product of packed weights and the input (pointwise) or its im2col, per group.
 * 16-bit: the pair products too, but a depthwise conv (one channel per group: a pair product per
 * channel costs more than its taps) and weights the pairs cannot hold (-32768) take the direct
 * scalar kernels with an int64 accumulator.
 */
export function convKernel(f: WeightFixed<ConvParams>, env: FixedKernelEnv): KernelCall {
  const p = f.macParams;
  const a = f.arith;
  const cg = p.c / p.group, mg = p.m / p.group, kk = cg * p.kh * p.kw;
  const weightAt = (oc: number, t: number) => f.w[oc * kk + t];
  const depthwise = p.group === p.c && p.m === p.c;
  const correction = a.bits === 16 && !depthwise ? pairs16(f.xq, p.m, kk, weightAt) : undefined;
  const buf = layerBuffers(env, a, correction);
  const inImage = p.c * p.h * p.w * bytesOf(f.xq);
  const outImage = p.m * p.oh * p.ow * bytesOf(f.yq);
  const [xs, ys] = [+f.xq.signed, +f.yq.signed];
  if (a.bits === 16 && !correction) {
    const wPtr = allocI16(env, f.w);
    const k = kernelFn(env, depthwise ? 'dw_q16_direct' : 'conv_q16_direct');
    const [xc, yc] = [qCode(f.xq), qCode(f.yq)];
    const geom = geometryBlock(env, p);
    return ([x], [y]) => {
      const sums = buf.begin();
      for (let b = 0; b < p.n; b++) {
        k(x + b * inImage, xc, geom, wPtr, buf.bias, buf.shift, a.lo, a.hi, y + b * outImage, yc, sums);
      }
      buf.end();
    };
  }
  const depthwise3x3 = a.bits === 8 && depthwise && p.kh === 3 && p.kw === 3 && p.sh === p.sw &&
    (p.sh === 1 || p.sh === 2) && p.dh === 1 && p.dw === 1 && p.pt >= 0 && p.pl >= 0;
  if (depthwise3x3) {
    // Per channel: the pairs (w[ky][0], w[ky][1]) as i16 halves of an i32, then w[ky][2].
    const wPtr = env.alloc(p.c * 24);
    const packed = new Int32Array(env.buffer(), wPtr, p.c * 6);
    for (let c = 0; c < p.c; c++) {
      for (let ky = 0; ky < 3; ky++) {
        const w = (kx: number) => f.w[c * 9 + ky * 3 + kx];
        packed[c * 6 + ky] = (w(0) & 0xffff) | (w(1) << 16);
        packed[c * 6 + 3 + ky] = w(2);
      }
    }
    const pad = env.scratch(kernelFn(env, 'dw3x3_pad_bytes')(p.oh, p.ow, p.sh) as number);
    const k = kernelFn(env, 'dw3x3_q8_simd');
    const geom = geometryBlock(env, p);
    return ([x], [y]) => {
      const sums = buf.begin();
      for (let b = 0; b < p.n; b++) {
        k(x + b * inImage, xs, geom, wPtr, buf.bias, buf.shift, a.lo, a.hi, y + b * outImage, ys, sums, pad.ptr);
      }
      buf.end();
    };
  }
  // The pair product per group (int32 in 8-bit layers, int64 in 16-bit ones).
  const w = packPairWeights(env, p.group, mg, kk, weightAt);
  const pixels = p.oh * p.ow;
  const pointwise = isPointwise(p);
  const cols = env.scratch(Math.ceil(pixels / 8) * w.half * 32);
  const pack = pairPacker(env, f.xq, pointwise);
  // One group's image: the im2col kernels see cg channels.
  const geom = geometryBlock(env, { ...p, c: cg, m: mg, group: 1 });
  const xPlanes = cg * p.h * p.w * bytesOf(f.xq), yPlanes = mg * pixels * bytesOf(f.yq);
  const wide = a.bits === 16;
  const gemm = kernelFn(env, wide ? 'gemm_q16_pairs_simd' : 'gemm_q8_pairs_simd');
  const yFlag = wide ? qCode(f.yq) : ys;
  return ([x], [y]) => {
    const sums = buf.begin();
    for (let b = 0; b < p.n; b++) {
      for (let g = 0; g < p.group; g++) {
        pack(x + b * inImage + g * xPlanes, cg, pixels, geom, cols.ptr);
        const bias = wide ? buf.bias64 + g * mg * 8 : buf.bias + g * mg * 4;
        gemm(w.ptr + g * w.groupBytes, cols.ptr, w.half, mg, pixels, bias, buf.shift + g * mg * 4, a.lo, a.hi,
          y + b * outImage + g * yPlanes, yFlag, sums && sums + g * mg * 8);
      }
    }
    buf.end();
  };
}

conv.fixed = weightFixed<ConvParams>(conv, ({ params: p }) => {
  const inner = (p.c / p.group) * p.kh * p.kw;
  const plane = p.oh * p.ow;
  return {
    macParams: { ...p, hasBias: false },
    weightShape: [p.m, p.c / p.group, p.kh, p.kw],
    channels: p.m,
    weightChannel: (i) => Math.floor(i / inner),
    outChannel: (i) => Math.floor(i / plane) % p.m,
    outLength: p.n * p.m * plane,
  };
}, convKernel);

// 8-bit convolution as a matrix product on i16 pairs: Y[m][p] = sum_k W[m][k] X[k][p] + bias[m],
// requantized. Both operands are widened to i16 and laid out so that i32x4.dot_i16x8_s takes two
// consecutive k at once (8 MACs per instruction):
//   packed weights  [ceil(M/4)][ceil(K/2)][4 channels] i32 = (w[m][2j] | w[m][2j+1] << 16)
//   packed input    [ceil(P/8)][ceil(K/2)][8 pixels][2] i16 (one pixel block's K contiguous)
// Pointwise convs pack their input directly; other convs pack an im2col of it.
import {
  GEOM_C, GEOM_DH, GEOM_DW, GEOM_H, GEOM_KH, GEOM_KW, GEOM_OH, GEOM_OW, GEOM_PL, GEOM_PT, GEOM_SH, GEOM_SW, GEOM_W,
} from '../shared';
import { clamps, evens, finish8, load8x8, roundTerm } from './q';

/** Pack an 8-bit [K][P] tensor (K channel planes of P pixels) into the i16-pair layout. */
export function pack_pairs_q8(x: usize, k: i32, p: i32, signedIn: bool, xp: usize): void {
  if (signedIn) packPairs<i8>(x, k, p, xp);
  else packPairs<u8>(x, k, p, xp);
}

@inline function packPairs<T>(x: usize, k: i32, p: i32, xp: usize): void {
  const kh = (k + 1) >> 1;
  const pb = (p + 7) >> 3;
  for (let j = 0; j < kh; j++) {
    const c0 = x + <usize>(2 * j) * <usize>p;
    const has1 = 2 * j + 1 < k;
    // Pixels past P read the next bytes in memory: they only reach padded output lanes.
    for (let q = 0; q < pb; q++) {
      const a = load8x8<T>(c0 + (<usize>q << 3));
      const b = has1 ? load8x8<T>(c0 + <usize>p + (<usize>q << 3)) : i16x8.splat(0);
      const dst = xp + ((<usize>q * <usize>kh + <usize>j) << 5);
      v128.store(dst, i16x8.shuffle(a, b, 0, 8, 1, 9, 2, 10, 3, 11));
      v128.store(dst, i16x8.shuffle(a, b, 4, 12, 5, 13, 6, 14, 7, 15), 16);
    }
  }
}

/**
 * im2col of one group of an 8-bit NCHW image straight into the i16-pair layout:
 * row k = (c * kh + ky) * kw + kx (the ONNX weight order), column p = oy * ow + ox; taps in the
 * padding read 0. Blocks of 8 pixels in one output row whose taps all fall inside the image
 * (most of them) gather 8 inputs per tap with one vector load (strides 1 and 2).
 */
export function im2col_pairs_q8(
  x: usize, signedIn: bool, geom: usize, xp: usize,
): void {
  const c = load<i32>(geom, GEOM_C), h = load<i32>(geom, GEOM_H), w = load<i32>(geom, GEOM_W);
  const kh = load<i32>(geom, GEOM_KH), kw = load<i32>(geom, GEOM_KW), sh = load<i32>(geom, GEOM_SH);
  const sw = load<i32>(geom, GEOM_SW), dh = load<i32>(geom, GEOM_DH), dw = load<i32>(geom, GEOM_DW);
  const pt = load<i32>(geom, GEOM_PT), pl = load<i32>(geom, GEOM_PL), oh = load<i32>(geom, GEOM_OH);
  const ow = load<i32>(geom, GEOM_OW);
  if (signedIn) im2col<i8>(x, c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, xp);
  else im2col<u8>(x, c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, xp);
}

@inline function gather8<T>(p: usize, sw: i32): v128 {
  return sw == 1 ? load8x8<T>(p) : evens<T>(p);
}

@inline function im2col<T>(
  x: usize, c: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, dh: i32, dw: i32,
  pt: i32, pl: i32, oh: i32, ow: i32, xp: usize,
): void {
  const kk = c * kh * kw;
  const half = (kk + 1) >> 1;
  const pixels = oh * ow;
  const plane = h * w;
  for (let q = 0; q < (pixels + 7) >> 3; q++) {
    const p0 = q << 3;
    const oy = p0 / ow, ox = p0 % ow;
    const iy0 = oy * sh - pt, ix0 = ox * sw - pl;
    const dst = xp + ((<usize>q * <usize>half) << 5);
    const inside = (sw == 1 || sw == 2) && ox + 8 <= ow && iy0 >= 0 && iy0 + (kh - 1) * dh < h &&
      ix0 >= 0 && ix0 + 7 * sw + (kw - 1) * dw < w;
    if (inside) {
      // Taps k and k + 1 side by side; (ci, ky, kx) of k advance as counters.
      const base = x + <usize>(iy0 * w + ix0);
      let ci = 0, ky = 0, kx = 0;
      for (let k = 0; k < kk; k += 2) {
        const a = gather8<T>(base + <usize>(ci * plane + ky * dh * w + kx * dw), sw);
        if (++kx == kw) { kx = 0; if (++ky == kh) { ky = 0; ci++; } }
        let b = i16x8.splat(0);
        if (k + 1 < kk) {
          b = gather8<T>(base + <usize>(ci * plane + ky * dh * w + kx * dw), sw);
          if (++kx == kw) { kx = 0; if (++ky == kh) { ky = 0; ci++; } }
        }
        const d = dst + (<usize>(k >> 1) << 5);
        v128.store(d, i16x8.shuffle(a, b, 0, 8, 1, 9, 2, 10, 3, 11));
        v128.store(d, i16x8.shuffle(a, b, 4, 12, 5, 13, 6, 14, 7, 15), 16);
      }
      continue;
    }
    // Edge blocks: element by element (pixels past the end are left as they are: they only
    // reach padded output lanes).
    for (let j = 0; j < 8 && p0 + j < pixels; j++) {
      const py = (p0 + j) / ow, px = (p0 + j) % ow;
      let ci = 0, ky = 0, kx = 0;
      for (let k = 0; k < kk; k++) {
        const iy = py * sh - pt + ky * dh, ix = px * sw - pl + kx * dw;
        let v: i32 = 0;
        if (iy >= 0 && iy < h && ix >= 0 && ix < w) v = <i32>load<T>(x + <usize>(ci * plane + iy * w + ix));
        store<i16>(dst + (<usize>(k >> 1) << 5) + (<usize>j << 2) + (<usize>(k & 1) << 1), <i16>v);
        if (++kx == kw) { kx = 0; if (++ky == kh) { ky = 0; ci++; } }
      }
    }
  }
}

/**
 * The product of packed weights (M channels, K = 2 * kh) and a packed input (P pixels), with
 * the requantization fused: y[m * P + p] = clamp((acc + bias[m] + 2^(n-1)) >> n, lo, hi), n =
 * shift[m]. Tiles of 4 channels x 8 pixels (8 accumulators); pixel blocks are visited in groups
 * whose packed input (kh * 32 bytes each) stays in L1 while every channel block passes over it.
 */
export function gemm_q8_pairs_simd(
  wp: usize, xp: usize, kh: i32, m: i32, p: i32, bias: usize, shift: usize, lo: i32, hi: i32,
  y: usize, signedOut: bool, sums: usize,
): void {
  const pb = (p + 7) >> 3;
  const mb = (m + 3) >> 2;
  const group = max(1, 512 / kh);
  const xStep = <usize>kh << 5;
  for (let g0 = 0; g0 < pb; g0 += group) {
    const g1 = min(pb, g0 + group);
    for (let b = 0; b < mb; b++) {
      const m0 = b << 2;
      const wRow = wp + ((<usize>b * <usize>kh) << 4);
      // Accumulators start at bias + 2^(n-1) (padded channels: anything, never stored).
      const i0 = accStart(m0, m, bias, shift), i1 = accStart(m0 + 1, m, bias, shift);
      const i2 = accStart(m0 + 2, m, bias, shift), i3 = accStart(m0 + 3, m, bias, shift);
      for (let q = g0; q < g1; q++) {
        let xo = xp + <usize>q * xStep;
        let wo = wRow;
        let a00 = i0, a01 = i0, a10 = i1, a11 = i1, a20 = i2, a21 = i2, a30 = i3, a31 = i3;
        for (let j = 0; j < kh; j++) {
          const x0 = v128.load(xo);
          const x1 = v128.load(xo, 16);
          let wv = v128.load32_splat(wo);
          a00 = i32x4.add(a00, i32x4.dot_i16x8_s(x0, wv));
          a01 = i32x4.add(a01, i32x4.dot_i16x8_s(x1, wv));
          wv = v128.load32_splat(wo, 4);
          a10 = i32x4.add(a10, i32x4.dot_i16x8_s(x0, wv));
          a11 = i32x4.add(a11, i32x4.dot_i16x8_s(x1, wv));
          wv = v128.load32_splat(wo, 8);
          a20 = i32x4.add(a20, i32x4.dot_i16x8_s(x0, wv));
          a21 = i32x4.add(a21, i32x4.dot_i16x8_s(x1, wv));
          wv = v128.load32_splat(wo, 12);
          a30 = i32x4.add(a30, i32x4.dot_i16x8_s(x0, wv));
          a31 = i32x4.add(a31, i32x4.dot_i16x8_s(x1, wv));
          xo += 32;
          wo += 16;
        }
        const p0 = q << 3;
        const count = min(8, p - p0);
        const out = y + <usize>p0;
        finishChannel(a00, a01, m0, m, shift, lo, hi, out, p, count, signedOut, sums);
        finishChannel(a10, a11, m0 + 1, m, shift, lo, hi, out, p, count, signedOut, sums);
        finishChannel(a20, a21, m0 + 2, m, shift, lo, hi, out, p, count, signedOut, sums);
        finishChannel(a30, a31, m0 + 3, m, shift, lo, hi, out, p, count, signedOut, sums);
      }
    }
  }
}

@inline function accStart(ch: i32, m: i32, bias: usize, shift: usize): v128 {
  if (ch >= m) return i32x4.splat(0);
  const at = <usize>ch << 2;
  return i32x4.splat(load<i32>(bias + at) + roundTerm(load<i32>(shift + at)));
}

@inline function finishChannel(
  a0: v128, a1: v128, ch: i32, m: i32, shift: usize, lo: i32, hi: i32, out: usize, p: i32,
  count: i32, signedOut: bool, sums: usize,
): void {
  if (ch >= m) return;
  finish8(a0, a1, load<i32>(shift + (<usize>ch << 2)), lo, hi, clamps(lo, hi, signedOut), out + <usize>ch * <usize>p, count, signedOut, sums, ch);
}

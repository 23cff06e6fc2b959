// 16-bit layers (any operand 16-bit) as the same product on i16 pairs as gemm.ts, with int64
// accumulators: each i32x4.dot_i16x8_s (two products of at most 2^15 * 2^15, so its i32 lanes
// hold them as long as no weight is -32768: the engine checks) is widened and added in int64.
// uint16 inputs do not fit i16: they are packed as x - 32768 and the engine adds
// 32768 * sum(w) to each channel's bias, which makes padded taps (packed as -32768) count as 0.
import {
  GEOM_C, GEOM_DH, GEOM_DW, GEOM_H, GEOM_KH, GEOM_KW, GEOM_OH, GEOM_OW, GEOM_PL, GEOM_PT, GEOM_SH, GEOM_SW, GEOM_W,
} from '../shared';
import { loadQ, roundShift64, storeQ, U16 } from './q';

/** Pack a 16-bit [K][P] tensor into the i16-pair layout of gemm.ts (uint16 offset by -32768). */
export function pack_pairs_q16(x: usize, k: i32, p: i32, unsignedIn: bool, xp: usize): void {
  const kh = (k + 1) >> 1;
  const pb = (p + 7) >> 3;
  const flip = i16x8.splat(unsignedIn ? -32768 : 0);
  const plane = <usize>p << 1;
  for (let j = 0; j < kh; j++) {
    const c0 = x + <usize>(2 * j) * plane;
    const has1 = 2 * j + 1 < k;
    for (let q = 0; q < pb; q++) {
      // Pixels past P read the next bytes in memory: they only reach padded output lanes.
      const a = v128.xor(v128.load(c0 + (<usize>q << 4)), flip);
      const b = has1 ? v128.xor(v128.load(c0 + plane + (<usize>q << 4)), flip) : i16x8.splat(0);
      const dst = xp + ((<usize>q * <usize>kh + <usize>j) << 5);
      v128.store(dst, i16x8.shuffle(a, b, 0, 8, 1, 9, 2, 10, 3, 11));
      v128.store(dst, i16x8.shuffle(a, b, 4, 12, 5, 13, 6, 14, 7, 15), 16);
    }
  }
}

/** im2col of one group of a 16-bit NCHW image into the i16-pair layout (see gemm.ts). */
export function im2col_pairs_q16(
  x: usize, xt: i32, geom: usize, xp: usize,
): void {
  const c = load<i32>(geom, GEOM_C), h = load<i32>(geom, GEOM_H), w = load<i32>(geom, GEOM_W);
  const kh = load<i32>(geom, GEOM_KH), kw = load<i32>(geom, GEOM_KW), sh = load<i32>(geom, GEOM_SH);
  const sw = load<i32>(geom, GEOM_SW), dh = load<i32>(geom, GEOM_DH), dw = load<i32>(geom, GEOM_DW);
  const pt = load<i32>(geom, GEOM_PT), pl = load<i32>(geom, GEOM_PL), oh = load<i32>(geom, GEOM_OH);
  const ow = load<i32>(geom, GEOM_OW);
  const kk = c * kh * kw;
  const half = (kk + 1) >> 1;
  const blockBytes = <usize>half << 5;
  const offset = xt == U16 ? 32768 : 0;
  for (let k = 0; k < kk; k++) {
    const ci = k / (kh * kw), r = k % (kh * kw), ky = r / kw, kx = r % kw;
    const plane = ci * h * w;
    const base = xp + (<usize>(k >> 1) << 5) + (<usize>(k & 1) << 1);
    let pix = 0;
    for (let oy = 0; oy < oh; oy++) {
      const iy = oy * sh - pt + ky * dh;
      for (let ox = 0; ox < ow; ox++, pix++) {
        const ix = ox * sw - pl + kx * dw;
        const inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
        const v = (inside ? loadQ(x, plane + iy * w + ix, xt) : 0) - offset;
        store<i16>(base + <usize>(pix >> 3) * blockBytes + (<usize>(pix & 7) << 2), <i16>v);
      }
    }
  }
}

/**
 * y[m * P + p] = clamp(roundShift(acc + bias[m], shift[m]), lo, hi) of type yt, acc in int64;
 * bias: [M] i64 (with the uint16 correction). Tiles of 4 channels x 4 pixels (8 i64x2
 * accumulators); sums: optional per-channel f64 sums of acc + bias.
 */
export function gemm_q16_pairs_simd(
  wp: usize, xp: usize, kh: i32, m: i32, p: i32, bias: usize, shift: usize, lo: i32, hi: i32,
  y: usize, yt: i32, sums: usize,
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
      for (let q = g0; q < g1; q++) {
        for (let half = 0; half < 2; half++) {
          const p0 = (q << 3) + (half << 2);
          if (p0 >= p) break;
          let xo = xp + <usize>q * xStep + (<usize>half << 4);
          let wo = wRow;
          const z = i64x2.splat(0);
          let a0 = z, a1 = z, b0 = z, b1 = z, c0 = z, c1 = z, d0 = z, d1 = z;
          for (let j = 0; j < kh; j++) {
            const x = v128.load(xo);
            let t = i32x4.dot_i16x8_s(x, v128.load32_splat(wo));
            a0 = i64x2.add(a0, i64x2.extend_low_i32x4_s(t)); a1 = i64x2.add(a1, i64x2.extend_high_i32x4_s(t));
            t = i32x4.dot_i16x8_s(x, v128.load32_splat(wo, 4));
            b0 = i64x2.add(b0, i64x2.extend_low_i32x4_s(t)); b1 = i64x2.add(b1, i64x2.extend_high_i32x4_s(t));
            t = i32x4.dot_i16x8_s(x, v128.load32_splat(wo, 8));
            c0 = i64x2.add(c0, i64x2.extend_low_i32x4_s(t)); c1 = i64x2.add(c1, i64x2.extend_high_i32x4_s(t));
            t = i32x4.dot_i16x8_s(x, v128.load32_splat(wo, 12));
            d0 = i64x2.add(d0, i64x2.extend_low_i32x4_s(t)); d1 = i64x2.add(d1, i64x2.extend_high_i32x4_s(t));
            xo += 32;
            wo += 16;
          }
          const count = min(4, p - p0);
          finish4(a0, a1, m0, m, p, p0, count, bias, shift, lo, hi, y, yt, sums);
          finish4(b0, b1, m0 + 1, m, p, p0, count, bias, shift, lo, hi, y, yt, sums);
          finish4(c0, c1, m0 + 2, m, p, p0, count, bias, shift, lo, hi, y, yt, sums);
          finish4(d0, d1, m0 + 3, m, p, p0, count, bias, shift, lo, hi, y, yt, sums);
        }
      }
    }
  }
}

/** The epilogue of one channel over 4 pixels (int64 lanes: pixels 0, 1 in v0, 2, 3 in v1). */
@inline function finish4(
  v0: v128, v1: v128, ch: i32, m: i32, p: i32, p0: i32, count: i32, bias: usize, shift: usize, lo: i32, hi: i32,
  y: usize, yt: i32, sums: usize,
): void {
  if (ch >= m) return;
  const b = load<i64>(bias + (<usize>ch << 3));
  const n = load<i32>(shift + (<usize>ch << 2));
  const at = ch * p + p0;
  let total: i64 = 0;
  for (let j = 0; j < count; j++) {
    const v = (j == 0 ? i64x2.extract_lane(v0, 0) : j == 1 ? i64x2.extract_lane(v0, 1) : j == 2 ? i64x2.extract_lane(v1, 0) : i64x2.extract_lane(v1, 1)) + b;
    total += v;
    const r = roundShift64(v, n);
    storeQ(y, at + j, yt, <i32>(r < <i64>lo ? <i64>lo : r > <i64>hi ? <i64>hi : r));
  }
  if (sums) {
    const s = sums + (<usize>ch << 3);
    store<f64>(s, load<f64>(s) + <f64>total);
  }
}

// 8-bit depthwise 3x3 convolution, stride 1 or 2, any pads: each channel plane is copied into a
// zero-bordered scratch plane; then two output rows of 8 pixels at a time, almost every tap pair
// through i32x4.dot_i16x8_s (x86 has no widening 16-bit multiply: extmul costs three
// instructions); an input row shared by the two output rows is read once. Requantization is
// fused.
import { GEOM_C, GEOM_H, GEOM_OH, GEOM_OW, GEOM_PL, GEOM_PT, GEOM_SH, GEOM_W } from '../shared';
import { clamps, evens, finish8, load8x8, roundTerm } from './q';

/**
 * x: [c][h][w] 8-bit; wts: [c][6] i32 = per kernel row ky the pair (w[ky][0] | w[ky][1] << 16)
 * for ky = 0..2, then w[ky][2] for ky = 0..2; bias/shift: [c] i32; y: [c][oh][ow] 8-bit.
 * pad: scratch of dw3x3_pad_bytes(...) bytes.
 */
export function dw3x3_q8_simd(
  x: usize, signedIn: bool, geom: usize, wts: usize, bias: usize, shift: usize, lo: i32, hi: i32,
  y: usize, signedOut: bool, sums: usize, pad: usize,
): void {
  const c = load<i32>(geom, GEOM_C), h = load<i32>(geom, GEOM_H), w = load<i32>(geom, GEOM_W);
  const stride = load<i32>(geom, GEOM_SH), pt = load<i32>(geom, GEOM_PT), pl = load<i32>(geom, GEOM_PL);
  const oh = load<i32>(geom, GEOM_OH), ow = load<i32>(geom, GEOM_OW);
  if (signedIn) {
    if (stride == 1) dw3x3<i8>(x, c, h, w, wts, bias, shift, lo, hi, 1, pt, pl, oh, ow, y, signedOut, sums, pad);
    else dw3x3<i8>(x, c, h, w, wts, bias, shift, lo, hi, 2, pt, pl, oh, ow, y, signedOut, sums, pad);
  } else if (stride == 1) {
    dw3x3<u8>(x, c, h, w, wts, bias, shift, lo, hi, 1, pt, pl, oh, ow, y, signedOut, sums, pad);
  } else {
    dw3x3<u8>(x, c, h, w, wts, bias, shift, lo, hi, 2, pt, pl, oh, ow, y, signedOut, sums, pad);
  }
}

/** Row width of the padded plane: every tap of the last 8-pixel block, plus two vectors of
 *  slack (row copies overshoot by up to 15 bytes). */
@inline function padWidth(ow: i32, stride: i32): i32 {
  return (((ow + 7) & ~7) - 1) * stride + 3 + 32;
}

/** Copy a row of n bytes 16 at a time, then zero the 16 bytes after it (the overshoot lands
 *  there: the right border must stay zero). Short rows make memory.copy's call cost dominate. */
@inline function copyRow(dst: usize, src: usize, n: i32): void {
  for (let i = 0; i < n; i += 16) v128.store(dst + <usize>i, v128.load(src + <usize>i));
  v128.store(dst + <usize>n, i32x4.splat(0));
}

/** Scratch bytes dw3x3_q8_simd needs. */
export function dw3x3_pad_bytes(oh: i32, ow: i32, stride: i32): i32 {
  // + 32: the last row copy may overshoot and zero past the plane (inputs wider than needed).
  return ((oh - 1) * stride + 3) * padWidth(ow, stride) + 32;
}

@inline function widen<T>(v: v128, high: bool): v128 {
  if (isSigned<T>()) return high ? i16x8.extend_high_i8x16_s(v) : i16x8.extend_low_i8x16_s(v);
  return high ? i16x8.extend_high_i8x16_u(v) : i16x8.extend_low_i8x16_u(v);
}

/** Input row at r, 8 output pixels: bytes (x[j*s], x[j*s+1]) for pixels j = 0..7 side by side
 *  (taps kx = 0, 1 as pairs). */
@inline function taps01(r: usize, stride: i32): v128 {
  const v = v128.load(r);
  return stride == 2 ? v : i8x16.shuffle(v, v, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8);
}

/** Tap kx = 2 of 8 output pixels, widened. */
@inline function tap2<T>(r: usize, stride: i32): v128 {
  return stride == 2 ? evens<T>(r + 2) : load8x8<T>(r + 2);
}

@inline function dot(acc: v128, x: v128, w: v128): v128 {
  return i32x4.add(acc, i32x4.dot_i16x8_s(x, w));
}

@inline function dw3x3<T>(
  x: usize, c: i32, h: i32, w: i32, wts: usize, bias: usize, shift: usize, lo: i32, hi: i32,
  stride: i32, pt: i32, pl: i32, oh: i32, ow: i32, y: usize, signedOut: bool, sums: usize, pad: usize,
): void {
  const pw = padWidth(ow, stride);
  const ph = (oh - 1) * stride + 3;
  // Borders are zeroed once: every channel writes the same interior.
  memory.fill(pad, 0, <usize>(ph * pw));
  const rows = min(h, ph - pt);
  const cols = min(w, pw - pl);
  const rowStep = <usize>(stride * pw);
  const clamp = clamps(lo, hi, signedOut);
  for (let ch = 0; ch < c; ch++) {
    const plane = x + <usize>ch * <usize>(h * w);
    for (let iy = 0; iy < rows; iy++) copyRow(pad + <usize>((iy + pt) * pw + pl), plane + <usize>(iy * w), cols);
    const wp = wts + <usize>ch * 24;
    const p0 = v128.load32_splat(wp), p1 = v128.load32_splat(wp, 4), p2 = v128.load32_splat(wp, 8);
    const w02 = load<i32>(wp, 12), w12 = load<i32>(wp, 16), w22 = load<i32>(wp, 20);
    // Tap-2 pairs of rows (0, 1) and (1, 2), and the single tap-2 weights of rows 0 and 2.
    const qa = i32x4.splat((w02 & 0xffff) | (w12 << 16)), qb = i32x4.splat((w12 & 0xffff) | (w22 << 16));
    const s0 = i16x8.splat(<i16>w02), s2 = i16x8.splat(<i16>w22);
    const n = load<i32>(shift + (<usize>ch << 2));
    const start = i32x4.splat(load<i32>(bias + (<usize>ch << 2)) + roundTerm(n));
    const outPlane = y + <usize>ch * <usize>(oh * ow);
    for (let oy = 0; oy < oh; oy += 2) {
      // Output row oy (accumulators a) reads padded rows ra + {0, 1, 2} pw, output row oy + 1
      // (accumulators b) rows ra + stride pw + {0, 1, 2} pw: rows they share are read once.
      const two = oy + 1 < oh;
      const ra = pad + <usize>oy * rowStep;
      const pwu = <usize>pw;
      for (let ox = 0; ox < ow; ox += 8) {
        const o = <usize>(ox * stride);
        let a0 = start, a1 = start, b0 = start, b1 = start;
        // Output row oy (accumulators a) takes padded rows 0, 1, 2 from ra, output row oy + 1
        // (accumulators b) rows s, s + 1, s + 2. Taps 0-1 of a row are i16 pairs; the tap-2
        // values of two rows are interleaved into pairs too (i16x8 shuffles are one unpack),
        // and the one left over per output row is a 16-bit product (8-bit x 8-bit fits) widened.
        let r = ra + o;
        let t = taps01(r, stride);
        a0 = dot(a0, widen<T>(t, false), p0); a1 = dot(a1, widen<T>(t, true), p0);
        const t0 = tap2<T>(r, stride);
        r += pwu;
        t = taps01(r, stride);
        let l = widen<T>(t, false), u = widen<T>(t, true);
        a0 = dot(a0, l, p1); a1 = dot(a1, u, p1);
        if (stride == 1 && two) { b0 = dot(b0, l, p0); b1 = dot(b1, u, p0); }
        const t1 = tap2<T>(r, stride);
        a0 = dot(a0, i16x8.shuffle(t0, t1, 0, 8, 1, 9, 2, 10, 3, 11), qa); a1 = dot(a1, i16x8.shuffle(t0, t1, 4, 12, 5, 13, 6, 14, 7, 15), qa);
        if (stride == 1 && two) {
          const m = i16x8.mul(t1, s0);
          b0 = i32x4.add(b0, i32x4.extend_low_i16x8_s(m)); b1 = i32x4.add(b1, i32x4.extend_high_i16x8_s(m));
        }
        r += pwu;
        t = taps01(r, stride);
        l = widen<T>(t, false); u = widen<T>(t, true);
        a0 = dot(a0, l, p2); a1 = dot(a1, u, p2);
        const t2 = tap2<T>(r, stride);
        let m = i16x8.mul(t2, s2);
        a0 = i32x4.add(a0, i32x4.extend_low_i16x8_s(m)); a1 = i32x4.add(a1, i32x4.extend_high_i16x8_s(m));
        if (two) {
          // Row 2 is row 1 of output oy + 1 at stride 1, its row 0 at stride 2.
          if (stride == 1) { b0 = dot(b0, l, p1); b1 = dot(b1, u, p1); }
          else { b0 = dot(b0, l, p0); b1 = dot(b1, u, p0); }
          r += pwu;
          t = taps01(r, stride);
          l = widen<T>(t, false); u = widen<T>(t, true);
          const t3 = tap2<T>(r, stride);
          if (stride == 1) {
            b0 = dot(b0, l, p2); b1 = dot(b1, u, p2);
            b0 = dot(b0, i16x8.shuffle(t2, t3, 0, 8, 1, 9, 2, 10, 3, 11), qb); b1 = dot(b1, i16x8.shuffle(t2, t3, 4, 12, 5, 13, 6, 14, 7, 15), qb);
          } else {
            b0 = dot(b0, l, p1); b1 = dot(b1, u, p1);
            b0 = dot(b0, i16x8.shuffle(t2, t3, 0, 8, 1, 9, 2, 10, 3, 11), qa); b1 = dot(b1, i16x8.shuffle(t2, t3, 4, 12, 5, 13, 6, 14, 7, 15), qa);
            r += pwu;
            t = taps01(r, stride);
            b0 = dot(b0, widen<T>(t, false), p2); b1 = dot(b1, widen<T>(t, true), p2);
            m = i16x8.mul(tap2<T>(r, stride), s2);
            b0 = i32x4.add(b0, i32x4.extend_low_i16x8_s(m)); b1 = i32x4.add(b1, i32x4.extend_high_i16x8_s(m));
          }
        }
        const count = min(8, ow - ox);
        const out = outPlane + <usize>(oy * ow + ox);
        finish8(a0, a1, n, lo, hi, clamp, out, count, signedOut, sums, ch);
        if (two) finish8(b0, b1, n, lo, hi, clamp, out + <usize>ow, count, signedOut, sums, ch);
      }
    }
  }
}

// 8-bit depthwise 3x3 convolution, stride 1 or 2, any pads: each channel plane is copied into a
// zero-bordered scratch plane, then 8 output pixels at a time take 9 taps of widened inputs
// times a splat weight (i32x4.extmul_*_i16x8_s), with the requantization fused.
import { finish8, load8x8 } from './q';

/**
 * x: [c][h][w] 8-bit, wts: [c][9] i16, bias/shift: [c] i32, y: [c][oh][ow] 8-bit.
 * pad: scratch of dw3x3_pad_bytes(...) bytes.
 */
export function dw3x3_q8_simd(
  x: usize, signedIn: bool, c: i32, h: i32, w: i32, wts: usize, bias: usize, shift: usize, lo: i32, hi: i32,
  stride: i32, pt: i32, pl: i32, oh: i32, ow: i32, y: usize, signedOut: bool, sums: usize, pad: usize,
): void {
  if (signedIn) dw3x3<i8>(x, c, h, w, wts, bias, shift, lo, hi, stride, pt, pl, oh, ow, y, signedOut, sums, pad);
  else dw3x3<u8>(x, c, h, w, wts, bias, shift, lo, hi, stride, pt, pl, oh, ow, y, signedOut, sums, pad);
}

/** Row width of the padded plane: every tap of the last 8-pixel block, plus a vector of slack. */
@inline function padWidth(ow: i32, stride: i32): i32 {
  return (((ow + 7) & ~7) - 1) * stride + 3 + 16;
}

/** Scratch bytes dw3x3_q8_simd needs. */
export function dw3x3_pad_bytes(oh: i32, ow: i32, stride: i32): i32 {
  return ((oh - 1) * stride + 3) * padWidth(ow, stride);
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
  for (let ch = 0; ch < c; ch++) {
    const plane = x + <usize>ch * <usize>(h * w);
    for (let iy = 0; iy < rows; iy++) {
      memory.copy(pad + <usize>((iy + pt) * pw + pl), plane + <usize>(iy * w), <usize>cols);
    }
    const wp = wts + <usize>ch * 18;
    const w0 = i16x8.splat(load<i16>(wp)), w1 = i16x8.splat(load<i16>(wp, 2)), w2 = i16x8.splat(load<i16>(wp, 4));
    const w3 = i16x8.splat(load<i16>(wp, 6)), w4 = i16x8.splat(load<i16>(wp, 8)), w5 = i16x8.splat(load<i16>(wp, 10));
    const w6 = i16x8.splat(load<i16>(wp, 12)), w7 = i16x8.splat(load<i16>(wp, 14)), w8 = i16x8.splat(load<i16>(wp, 16));
    const b = load<i32>(bias + (<usize>ch << 2));
    const n = load<i32>(shift + (<usize>ch << 2));
    const outPlane = y + <usize>ch * <usize>(oh * ow);
    for (let oy = 0; oy < oh; oy++) {
      const r0 = pad + <usize>(oy * stride * pw);
      const r1 = r0 + <usize>pw;
      const r2 = r1 + <usize>pw;
      for (let ox = 0; ox < ow; ox += 8) {
        let a0 = i32x4.splat(0), a1 = i32x4.splat(0);
        const o = <usize>(ox * stride);
        if (stride == 1) {
          let v = load8x8<T>(r0 + o);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w0)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w0));
          v = load8x8<T>(r0 + o + 1);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w1)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w1));
          v = load8x8<T>(r0 + o + 2);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w2)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w2));
          v = load8x8<T>(r1 + o);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w3)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w3));
          v = load8x8<T>(r1 + o + 1);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w4)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w4));
          v = load8x8<T>(r1 + o + 2);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w5)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w5));
          v = load8x8<T>(r2 + o);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w6)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w6));
          v = load8x8<T>(r2 + o + 1);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w7)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w7));
          v = load8x8<T>(r2 + o + 2);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w8)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w8));
        } else {
          let v = evens<T>(r0 + o);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w0)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w0));
          v = evens<T>(r0 + o + 1);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w1)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w1));
          v = evens<T>(r0 + o + 2);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w2)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w2));
          v = evens<T>(r1 + o);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w3)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w3));
          v = evens<T>(r1 + o + 1);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w4)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w4));
          v = evens<T>(r1 + o + 2);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w5)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w5));
          v = evens<T>(r2 + o);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w6)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w6));
          v = evens<T>(r2 + o + 1);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w7)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w7));
          v = evens<T>(r2 + o + 2);
          a0 = i32x4.add(a0, i32x4.extmul_low_i16x8_s(v, w8)); a1 = i32x4.add(a1, i32x4.extmul_high_i16x8_s(v, w8));
        }
        finish8(a0, a1, b, n, lo, hi, outPlane + <usize>(oy * ow + ox), min(8, ow - ox), signedOut, sums, ch);
      }
    }
  }
}

/** Bytes 0, 2, ..., 14 of 16 loaded at p, widened to i16x8 (stride-2 taps). */
@inline function evens<T>(p: usize): v128 {
  const v = v128.load(p);
  const e = i8x16.shuffle(v, v, 0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
  return isSigned<T>() ? i16x8.extend_low_i8x16_s(e) : i16x8.extend_low_i8x16_u(e);
}

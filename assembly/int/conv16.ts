// 16-bit layers (any operand 16-bit): direct convolution with an int64 accumulator, scalar; and
// its depthwise form. A fully connected layer is the 1x1 case on [rows][k] seen as rows images of k channels.
import {
  GEOM_C, GEOM_DH, GEOM_DW, GEOM_GROUP, GEOM_H, GEOM_KH, GEOM_KW, GEOM_M, GEOM_OH, GEOM_OW, GEOM_PL, GEOM_PT, GEOM_SH,
  GEOM_SW, GEOM_W,
} from '../shared';
import { loadQ, roundShift64, S8, storeQ, U16, U8 } from './q';

/**
 * geom: a GEOM block (assembly/shared.json; n unused: one image per call). x: [c][h][w] of type
 * xt; wt: [m][c/group][kh][kw] i16; bias/shift: [m] i32; y: [m][oh][ow] of type yt.
 * sums: optional per-channel f64 sums of the accumulators.
 */
export function conv_q16_direct(
  x: usize, xt: i32, geom: usize, wt: usize,
  bias: usize, shift: usize, lo: i32, hi: i32, y: usize, yt: i32, sums: usize,
): void {
  const c = load<i32>(geom, GEOM_C), h = load<i32>(geom, GEOM_H), w = load<i32>(geom, GEOM_W);
  const m = load<i32>(geom, GEOM_M), group = load<i32>(geom, GEOM_GROUP), kh = load<i32>(geom, GEOM_KH);
  const kw = load<i32>(geom, GEOM_KW), sh = load<i32>(geom, GEOM_SH), sw = load<i32>(geom, GEOM_SW);
  const dh = load<i32>(geom, GEOM_DH), dw = load<i32>(geom, GEOM_DW), pt = load<i32>(geom, GEOM_PT);
  const pl = load<i32>(geom, GEOM_PL), oh = load<i32>(geom, GEOM_OH), ow = load<i32>(geom, GEOM_OW);
  const cg = c / group;
  const mg = m / group;
  for (let oc = 0; oc < m; oc++) {
    const g = oc / mg;
    const b = <i64>load<i32>(bias + (<usize>oc << 2));
    const n = load<i32>(shift + (<usize>oc << 2));
    let total: i64 = 0;
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let acc: i64 = 0;
        for (let ic = 0; ic < cg; ic++) {
          const xc = (g * cg + ic) * h;
          const wc = wt + (<usize>((oc * cg + ic) * kh * kw) << 1);
          for (let ky = 0; ky < kh; ky++) {
            const iy = oy * sh - pt + ky * dh;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < kw; kx++) {
              const ix = ox * sw - pl + kx * dw;
              if (ix < 0 || ix >= w) continue;
              acc += <i64>loadQ(x, (xc + iy) * w + ix, xt) * <i64>load<i16>(wc + (<usize>(ky * kw + kx) << 1));
            }
          }
        }
        acc += b;
        total += acc;
        let v = roundShift64(acc, n);
        v = v < <i64>lo ? <i64>lo : v > <i64>hi ? <i64>hi : v;
        storeQ(y, (oc * oh + oy) * ow + ox, yt, <i32>v);
      }
    }
    if (sums) {
      const p = sums + (<usize>oc << 3);
      store<f64>(p, load<f64>(p) + <f64>total);
    }
  }
}

/**
 * Depthwise (group = c = m) 16-bit layers, any kernel, stride, dilation and pads: the direct
 * kernel's arithmetic (int64 accumulator, the same order of sums) without its per-tap input type
 * dispatch and bounds checks. Per output row the kernel rows inside the input, then the columns
 * whose taps all lie inside it without a check; only the border columns test each tap. Arguments
 * as conv_q16_direct's (wt: [c][1][kh][kw] i16).
 */
export function dw_q16_direct(
  x: usize, xt: i32, geom: usize, wt: usize,
  bias: usize, shift: usize, lo: i32, hi: i32, y: usize, yt: i32, sums: usize,
): void {
  if (xt == U8) dwQ16<u8>(x, geom, wt, bias, shift, lo, hi, y, yt, sums);
  else if (xt == S8) dwQ16<i8>(x, geom, wt, bias, shift, lo, hi, y, yt, sums);
  else if (xt == U16) dwQ16<u16>(x, geom, wt, bias, shift, lo, hi, y, yt, sums);
  else dwQ16<i16>(x, geom, wt, bias, shift, lo, hi, y, yt, sums);
}

function dwQ16<T>(
  x: usize, geom: usize, wt: usize, bias: usize, shift: usize, lo: i32, hi: i32, y: usize, yt: i32, sums: usize,
): void {
  const c = load<i32>(geom, GEOM_C), h = load<i32>(geom, GEOM_H), w = load<i32>(geom, GEOM_W);
  const kh = load<i32>(geom, GEOM_KH), kw = load<i32>(geom, GEOM_KW), sh = load<i32>(geom, GEOM_SH), sw = load<i32>(geom, GEOM_SW);
  const dh = load<i32>(geom, GEOM_DH), dw = load<i32>(geom, GEOM_DW), pt = load<i32>(geom, GEOM_PT);
  const pl = load<i32>(geom, GEOM_PL), oh = load<i32>(geom, GEOM_OH), ow = load<i32>(geom, GEOM_OW);
  const size = <usize>sizeof<T>();
  // Columns [ox0, ox1) have every tap inside the row: ox*sw - pl >= 0 and ox*sw - pl + (kw-1)*dw < w.
  let ox0 = (pl + sw - 1) / sw;
  let ox1 = w - 1 - (kw - 1) * dw + pl >= 0 ? (w - 1 - (kw - 1) * dw + pl) / sw + 1 : 0;
  if (ox0 > ow) ox0 = ow;
  if (ox1 > ow) ox1 = ow;
  if (ox1 < ox0) ox1 = ox0;
  for (let ch = 0; ch < c; ch++) {
    const plane = x + <usize>(ch * h * w) * size;
    const wc = wt + (<usize>(ch * kh * kw) << 1);
    const b = <i64>load<i32>(bias + (<usize>ch << 2));
    const n = load<i32>(shift + (<usize>ch << 2));
    let total: i64 = 0;
    for (let oy = 0; oy < oh; oy++) {
      const iy0 = oy * sh - pt;
      let ky0 = 0, ky1 = kh;
      while (ky0 < kh && iy0 + ky0 * dh < 0) ky0++;
      while (ky1 > ky0 && iy0 + (ky1 - 1) * dh >= h) ky1--;
      for (let ox = 0; ox < ow; ox++) {
        const ix0 = ox * sw - pl;
        if (sw == 1 && ox >= ox0 && ox + 4 <= ox1) {
          // Four neighbouring outputs: i16 x i16 products are exact in int32 (|p| < 2^31), summed in int64 lanes.
          let a0 = i64x2.splat(0), a1 = i64x2.splat(0);
          for (let ky = ky0; ky < ky1; ky++) {
            const row = plane + <usize>((iy0 + ky * dh) * w + ix0) * size;
            const wr = wc + (<usize>(ky * kw) << 1);
            for (let kx = 0; kx < kw; kx++) {
              const p = i32x4.mul(load4<T>(row + <usize>(kx * dw) * size), i32x4.splat(<i32>load<i16>(wr + (<usize>kx << 1))));
              a0 = i64x2.add(a0, i64x2.extend_low_i32x4_s(p));
              a1 = i64x2.add(a1, i64x2.extend_high_i32x4_s(p));
            }
          }
          const at = (ch * oh + oy) * ow + ox;
          total += finishQ16(i64x2.extract_lane(a0, 0) + b, n, lo, hi, y, at, yt);
          total += finishQ16(i64x2.extract_lane(a0, 1) + b, n, lo, hi, y, at + 1, yt);
          total += finishQ16(i64x2.extract_lane(a1, 0) + b, n, lo, hi, y, at + 2, yt);
          total += finishQ16(i64x2.extract_lane(a1, 1) + b, n, lo, hi, y, at + 3, yt);
          ox += 3;
          continue;
        }
        const inside = ox >= ox0 && ox < ox1;
        let acc: i64 = 0;
        for (let ky = ky0; ky < ky1; ky++) {
          const row = plane + <usize>((iy0 + ky * dh) * w) * size;
          const wr = wc + (<usize>(ky * kw) << 1);
          if (inside) {
            for (let kx = 0; kx < kw; kx++) {
              acc += <i64>load<T>(row + <usize>(ix0 + kx * dw) * size) * <i64>load<i16>(wr + (<usize>kx << 1));
            }
          } else {
            for (let kx = 0; kx < kw; kx++) {
              const ix = ix0 + kx * dw;
              if (ix < 0 || ix >= w) continue;
              acc += <i64>load<T>(row + <usize>ix * size) * <i64>load<i16>(wr + (<usize>kx << 1));
            }
          }
        }
        total += finishQ16(acc + b, n, lo, hi, y, (ch * oh + oy) * ow + ox, yt);
      }
    }
    if (sums) {
      const p = sums + (<usize>ch << 3);
      store<f64>(p, load<f64>(p) + <f64>total);
    }
  }
}

/** Four values of type T at p (exactly their bytes are read) as i32x4. */
@inline function load4<T>(p: usize): v128 {
  if (sizeof<T>() == 1) {
    const v = v128.load32_zero(p);
    return isSigned<T>() ? i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v)) : i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v));
  }
  const v = v128.load64_zero(p);
  return isSigned<T>() ? i32x4.extend_low_i16x8_s(v) : i32x4.extend_low_i16x8_u(v);
}

/** Requantize and store one accumulator (with its bias) at y[i]; returns it for the channel sums. */
@inline function finishQ16(acc: i64, n: i32, lo: i32, hi: i32, y: usize, i: i32, yt: i32): i64 {
  let v = roundShift64(acc, n);
  v = v < <i64>lo ? <i64>lo : v > <i64>hi ? <i64>hi : v;
  storeQ(y, i, yt, <i32>v);
  return acc;
}

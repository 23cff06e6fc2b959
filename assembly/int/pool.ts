// Integer pooling: global average, y = sat(roundShift(sum * m, n)) per plane, m = round(2^F / size)
// (sdk/device/spec.ts avgPoolMultiplier), n < 0 a left shift; max pooling; and table lookups.
import {
  GEOM_C, GEOM_DH, GEOM_DW, GEOM_H, GEOM_KH, GEOM_KW, GEOM_N, GEOM_OH, GEOM_OW, GEOM_PL, GEOM_PT, GEOM_SH, GEOM_SW,
  GEOM_W,
} from '../shared';
import { loadQ, roundShift64, S8, storeQ, U16, U8 } from './q';

export function global_avgpool_q(x: usize, xt: i32, planes: i32, size: i32, mult: i32, n: i32, lo: i32, hi: i32, y: usize, yt: i32): void {
  let i = 0;
  for (let p = 0; p < planes; p++) {
    let s: i64 = 0;
    for (let j = 0; j < size; j++, i++) s += <i64>loadQ(x, i, xt);
    s *= <i64>mult;
    const v = n >= 0 ? roundShift64(s, n) : s << <i64>-n;
    storeQ(y, p, yt, <i32>(v < <i64>lo ? <i64>lo : v > <i64>hi ? <i64>hi : v));
  }
}

/**
 * Max pooling over integer planes (any window, strides, dilations, pads; padded taps ignored),
 * then y = sat(roundShift(max * k, n)) (the format change, if any). Separable: a row pass into
 * `tmp` (i32, h x ow per plane), then a column pass, so a window costs kh + kw comparisons.
 */
export function maxpool_q(
  x: usize, xt: i32, geom: usize, k: i32, n: i32, lo: i32, hi: i32, y: usize, yt: i32, tmp: usize,
): void {
  const planes = load<i32>(geom, GEOM_N) * load<i32>(geom, GEOM_C);
  const h = load<i32>(geom, GEOM_H), w = load<i32>(geom, GEOM_W), oh = load<i32>(geom, GEOM_OH);
  const ow = load<i32>(geom, GEOM_OW), kh = load<i32>(geom, GEOM_KH), kw = load<i32>(geom, GEOM_KW);
  const sh = load<i32>(geom, GEOM_SH), sw = load<i32>(geom, GEOM_SW), dh = load<i32>(geom, GEOM_DH);
  const dw = load<i32>(geom, GEOM_DW), pt = load<i32>(geom, GEOM_PT), pl = load<i32>(geom, GEOM_PL);
  for (let pi = 0; pi < planes; pi++) {
    const xo = pi * h * w;
    for (let iy = 0; iy < h; iy++) {
      for (let ox = 0; ox < ow; ox++) {
        let m = i32.MIN_VALUE;
        for (let kx = 0; kx < kw; kx++) {
          const ix = ox * sw - pl + kx * dw;
          if (ix >= 0 && ix < w) m = max(m, loadQ(x, xo + iy * w + ix, xt));
        }
        store<i32>(tmp + (<usize>(iy * ow + ox) << 2), m);
      }
    }
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let m = i32.MIN_VALUE;
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - pt + ky * dh;
          if (iy >= 0 && iy < h) m = max(m, load<i32>(tmp + (<usize>(iy * ow + ox) << 2)));
        }
        const v = roundShift64(<i64>m * <i64>k, n);
        storeQ(y, (pi * oh + oy) * ow + ox, yt, <i32>(v < <i64>lo ? <i64>lo : v > <i64>hi ? <i64>hi : v));
      }
    }
  }
}

/** y[i] = table[x[i] - lo]: an element-wise op tabulated over every integer of its input format
 *  (the float fallbacks of sdk/engine/fixed.ts). */
export function lookup_q(x: usize, xt: i32, len: i32, table: usize, lo: i32, y: usize, yt: i32): void {
  // The element types fixed per instance: a type test per element costs more than the lookup.
  if (yt > S8) lookupTo<u16>(x, xt, len, table, lo, y);
  else lookupTo<u8>(x, xt, len, table, lo, y);
}

@inline function lookupTo<Y>(x: usize, xt: i32, len: i32, table: usize, lo: i32, y: usize): void {
  if (xt == U8) lookup<u8, Y>(x, len, table, lo, y);
  else if (xt == S8) lookup<i8, Y>(x, len, table, lo, y);
  else if (xt == U16) lookup<u16, Y>(x, len, table, lo, y);
  else lookup<i16, Y>(x, len, table, lo, y);
}

@inline function lookup<X, Y>(x: usize, len: i32, table: usize, lo: i32, y: usize): void {
  const t = table - (<usize>lo << 2);
  for (let i = 0; i < len; i++) {
    store<Y>(y + (<usize>i << alignof<Y>()), <Y>load<i32>(t + (<usize><i32>load<X>(x + (<usize>i << alignof<X>())) << 2)));
  }
}

// 16-bit layers (any operand 16-bit): direct convolution with an int64 accumulator, scalar.
// A fully connected layer is the 1x1 case on [rows][k] seen as rows images of k channels.
import {
  GEOM_C, GEOM_DH, GEOM_DW, GEOM_GROUP, GEOM_H, GEOM_KH, GEOM_KW, GEOM_M, GEOM_OH, GEOM_OW, GEOM_PL, GEOM_PT, GEOM_SH,
  GEOM_SW, GEOM_W,
} from '../shared';
import { loadQ, roundShift64, storeQ } from './q';

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

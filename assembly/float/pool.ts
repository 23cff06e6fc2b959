// Pooling over NCHW float32 planes (batch and channels folded into `planes`).
import {
  GEOM_C, GEOM_DH, GEOM_DW, GEOM_H, GEOM_KH, GEOM_KW, GEOM_N, GEOM_OH, GEOM_OW, GEOM_PL, GEOM_PT, GEOM_SH, GEOM_SW,
  GEOM_W,
} from '../shared';
import { copyFloats, loadStrided, storeLanes } from './util';

@inline
function reduce4(a: v128, b: v128, isMax: bool): v128 {
  return isMax ? f32x4.pmax(a, b) : f32x4.add(a, b);
}

/**
 * MaxPool / AveragePool with any window, stride, dilation and pads, as two separable passes per
 * plane: each input row, copied into `row` between borders of the pad value (-inf for max, 0 for
 * average; the caller fills them once), is reduced along x into `hbuf` (h rows of owv floats);
 * then output rows reduce kh of those rows. Windows of any size cost kh + kw operations per
 * output, 4 outputs at a time. Averages divide by rowCount[oy] * colCount[ox], the window's
 * cells inside the input (or inside input + pads with count_include_pad), precomputed per axis.
 */
export function pool_f32_simd(
  x: usize, y: usize, geom: usize, isMax: bool, rowCount: usize, colCount: usize, row: usize, hbuf: usize,
): void {
  const planes = load<i32>(geom, GEOM_N) * load<i32>(geom, GEOM_C);
  const h = load<i32>(geom, GEOM_H), w = load<i32>(geom, GEOM_W), oh = load<i32>(geom, GEOM_OH);
  const ow = load<i32>(geom, GEOM_OW), kh = load<i32>(geom, GEOM_KH), kw = load<i32>(geom, GEOM_KW);
  const sh = load<i32>(geom, GEOM_SH), sw = load<i32>(geom, GEOM_SW), dh = load<i32>(geom, GEOM_DH);
  const dw = load<i32>(geom, GEOM_DW), pt = load<i32>(geom, GEOM_PT), pl = load<i32>(geom, GEOM_PL);
  if (isMax) poolPlanes(x, y, planes, h, w, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, true, rowCount, colCount, row, hbuf);
  else poolPlanes(x, y, planes, h, w, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, false, rowCount, colCount, row, hbuf);
}

/** The body of pool_f32_simd; `isMax` is a constant at both call sites. */
@inline
function poolPlanes(
  x: usize, y: usize, planes: i32, h: i32, w: i32, oh: i32, ow: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, dh: i32, dw: i32, pt: i32, pl: i32,
  isMax: bool, rowCount: usize, colCount: usize, row: usize, hbuf: usize,
): void {
  const owv = (ow + 3) & ~3;
  const hStride = <usize>owv << 2;
  const init = f32x4.splat(isMax ? -Infinity : 0);
  const rowIn = row + (<usize>pl << 2);
  const dwOff = <usize>dw << 2;
  for (let p = 0; p < planes; p++) {
    const xp = x + <usize>p * <usize>h * <usize>w * 4;
    for (let iy = 0; iy < h; iy++) {
      const src = xp + <usize>iy * <usize>w * 4;
      copyFloats(rowIn, src, w);
      const hr = hbuf + <usize>iy * hStride;
      for (let ox = 0; ox < ow; ox += 4) {
        let acc = init;
        let q = row + (<usize>(ox * sw) << 2);
        for (let kx = 0; kx < kw; kx++) { acc = reduce4(acc, loadStrided(q, sw), isMax); q += dwOff; }
        v128.store(hr + (<usize>ox << 2), acc);
      }
    }
    let yp = y + <usize>p * <usize>oh * <usize>ow * 4;
    for (let oy = 0; oy < oh; oy++) {
      const iy0 = oy * sh - pt;
      const scale = f32x4.splat(isMax ? 1 : 1 / load<f32>(rowCount + (<usize>oy << 2)));
      for (let ox = 0; ox < ow; ox += 4) {
        let acc = init;
        for (let ky = 0; ky < kh; ky++) {
          const iy = iy0 + ky * dh;
          if (iy >= 0 && iy < h) acc = reduce4(acc, v128.load(hbuf + <usize>iy * hStride + (<usize>ox << 2)), isMax);
        }
        if (!isMax) acc = f32x4.div(f32x4.mul(acc, scale), v128.load(colCount + (<usize>ox << 2)));
        storeLanes(yp + (<usize>ox << 2), acc, ow - ox);
      }
      yp += <usize>ow << 2;
    }
  }
}

/** GlobalAveragePool / GlobalMaxPool: one value per plane of `size` floats. */
export function global_pool_f32_simd(x: usize, y: usize, planes: i32, size: i32, isMax: bool): void {
  for (let p = 0; p < planes; p++) {
    const xp = x + <usize>p * <usize>size * 4;
    let acc = f32x4.splat(isMax ? -Infinity : 0);
    let i = 0;
    for (; i + 4 <= size; i += 4) acc = reduce4(acc, v128.load(xp + (<usize>i << 2)), isMax);
    let s: f32;
    if (isMax) {
      s = max(max(f32x4.extract_lane(acc, 0), f32x4.extract_lane(acc, 1)), max(f32x4.extract_lane(acc, 2), f32x4.extract_lane(acc, 3)));
      for (; i < size; i++) s = max(s, load<f32>(xp + (<usize>i << 2)));
    } else {
      s = (f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) + (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3));
      for (; i < size; i++) s += load<f32>(xp + (<usize>i << 2));
      s /= <f32>size;
    }
    store<f32>(y + (<usize>p << 2), s);
  }
}

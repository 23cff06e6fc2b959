// Conv kernels over NCHW float32. Weights arrive packed by sdk/ops/conv.ts:
//  - GEMM convs: per group, [ceil(mg/4)][k][4] with k = cg*kh*kw, and bias padded per group to a
//    multiple of 4 (see gemm.ts);
//  - depthwise convs: per channel 16 floats = kh*kw weights then the bias (generic: kh*kw+1
//    rounded up to 4).
import { activate_rows, clampOnStore } from './activation';
import {
  ACT_CLAMP, ACT_NONE, GEOM_C, GEOM_DH, GEOM_DW, GEOM_GROUP, GEOM_H, GEOM_KH, GEOM_KW, GEOM_M, GEOM_N, GEOM_OH,
  GEOM_OW, GEOM_PL, GEOM_PT, GEOM_SH, GEOM_SW, GEOM_W,
} from '../shared';
import { gemm_f32_packed_simd, tile4x8 } from './gemm';
import { copyFloats, loadStrided, storeLanes } from './util';

/** Columns of a GEMM block so that one block of the right operand (k rows) stays in L2. */
@inline
function blockColumns(k: i32, n: i32): i32 {
  const nb = max(8, ((32768 / k) >> 3) << 3);
  return min(nb, ((n + 7) >> 3) << 3);
}

/** 1x1 conv, stride 1, no pads: per batch and group one GEMM directly on the input planes. */
export function conv_f32_1x1_simd(
  x: usize, wp: usize, bias: usize, y: usize,
  batch: i32, groups: i32, cg: i32, mg: i32, hw: i32,
  act: i32, p0: f32, p1: f32,
): void {
  const mgPad = (mg + 3) & ~3;
  const nb = blockColumns(cg, hw);
  const plane = <usize>hw << 2;
  for (let b = 0; b < batch; b++) {
    for (let g = 0; g < groups; g++) {
      gemm_f32_packed_simd(
        wp + <usize>g * <usize>mgPad * <usize>cg * 4, bias + <usize>g * <usize>mgPad * 4,
        x + <usize>(b * groups + g) * <usize>cg * plane, hw,
        y + <usize>(b * groups + g) * <usize>mg * plane, hw,
        mg, cg, hw, nb, act, p0, p1,
      );
    }
  }
}

/** Fill columns [p0, p0+nb) of the im2col panel (k = cg*kh*kw rows of `ld` floats) of one group. */
function im2col(
  x: usize, panel: usize, ld: i32, p0: i32, nb: i32,
  cg: i32, h: i32, w: i32, ow: i32, kh: i32, kw: i32, sh: i32, sw: i32, dh: i32, dw: i32, pt: i32, pl: i32,
): void {
  let row = panel;
  for (let ic = 0; ic < cg; ic++) {
    const xc = x + <usize>ic * <usize>h * <usize>w * 4;
    for (let ky = 0; ky < kh; ky++) {
      for (let kx = 0; kx < kw; kx++) {
        let oy = p0 / ow, ox = p0 % ow;
        let j = 0;
        while (j < nb) {
          const run = min(ow - ox, nb - j);
          const dst = row + (<usize>j << 2);
          const iy = oy * sh - pt + ky * dh;
          if (iy < 0 || iy >= h) {
            memory.fill(dst, 0, <usize>run << 2);
          } else {
            const src = xc + <usize>iy * <usize>w * 4;
            const ix0 = ox * sw - pl + kx * dw;
            // Output columns whose input column is inside the row: t in [t0, t1).
            const t0 = ix0 >= 0 ? 0 : min(run, (-ix0 + sw - 1) / sw);
            const t1 = max(t0, min(run, ix0 < w ? (w - 1 - ix0) / sw + 1 : 0));
            if (t0 > 0) memory.fill(dst, 0, <usize>t0 << 2);
            let t = t0;
            for (; t + 4 <= t1; t += 4) v128.store(dst + (<usize>t << 2), loadStrided(src + (<usize>(ix0 + t * sw) << 2), sw));
            for (; t < t1; t++) store<f32>(dst + (<usize>t << 2), load<f32>(src + (<usize>(ix0 + t * sw) << 2)));
            if (t1 < run) memory.fill(dst + (<usize>t1 << 2), 0, <usize>(run - t1) << 2);
          }
          j += run;
          ox = 0;
          oy++;
        }
        row += <usize>ld << 2;
      }
    }
  }
}

/**
 * General conv (any kernel, stride, dilation, pads, groups) as GEMM on im2col panels built block
 * by block in `panel` (k x nb floats), so the scratch stays small and cache-resident.
 */
export function conv_f32_im2col_simd(
  x: usize, wp: usize, bias: usize, y: usize, panel: usize, nb: i32, geom: usize,
  act: i32, p0: f32, p1: f32,
): void {
  const batch = load<i32>(geom, GEOM_N), groups = load<i32>(geom, GEOM_GROUP);
  const cg = load<i32>(geom, GEOM_C) / groups, mg = load<i32>(geom, GEOM_M) / groups;
  const h = load<i32>(geom, GEOM_H), w = load<i32>(geom, GEOM_W), oh = load<i32>(geom, GEOM_OH);
  const ow = load<i32>(geom, GEOM_OW), kh = load<i32>(geom, GEOM_KH), kw = load<i32>(geom, GEOM_KW);
  const sh = load<i32>(geom, GEOM_SH), sw = load<i32>(geom, GEOM_SW), dh = load<i32>(geom, GEOM_DH);
  const dw = load<i32>(geom, GEOM_DW), pt = load<i32>(geom, GEOM_PT), pl = load<i32>(geom, GEOM_PL);
  const k = cg * kh * kw;
  const mgPad = (mg + 3) & ~3;
  const n = oh * ow;
  const inPlane = <usize>h * <usize>w * 4;
  const outPlane = <usize>n << 2;
  for (let b = 0; b < batch; b++) {
    for (let g = 0; g < groups; g++) {
      const xg = x + <usize>(b * groups + g) * <usize>cg * inPlane;
      const yg = y + <usize>(b * groups + g) * <usize>mg * outPlane;
      for (let c0 = 0; c0 < n; c0 += nb) {
        const cols = min(nb, n - c0);
        im2col(xg, panel, nb, c0, cols, cg, h, w, ow, kh, kw, sh, sw, dh, dw, pt, pl);
        gemm_f32_packed_simd(
          wp + <usize>g * <usize>mgPad * <usize>k * 4, bias + <usize>g * <usize>mgPad * 4,
          panel, nb, yg + (<usize>c0 << 2), n, mg, k, cols, cols, act, p0, p1,
        );
      }
    }
  }
}

/** One plane of conv_f32_dw3x3_simd, reading the zero-padded copy `pad` (rows of rowLen floats).
 *  `clamp` (act is Relu/Clip) is a constant at both call sites, so neither loop dispatches. */
@inline
function dw3x3Plane(
  pad: usize, rowLen: i32, wq: usize, yp: usize, oh: i32, ow: i32, s: i32, d: i32,
  clamp: bool, act: i32, p0: f32, p1: f32,
): void {
  const storeAct = clamp ? ACT_CLAMP : ACT_NONE;
  const w0 = v128.load32_splat(wq), w1 = v128.load32_splat(wq, 4), w2 = v128.load32_splat(wq, 8);
  const w3 = v128.load32_splat(wq, 12), w4 = v128.load32_splat(wq, 16), w5 = v128.load32_splat(wq, 20);
  const w6 = v128.load32_splat(wq, 24), w7 = v128.load32_splat(wq, 28), w8 = v128.load32_splat(wq, 32);
  const bv = v128.load32_splat(wq, 36);
  const rowBytes = <usize>rowLen << 2;
  const dOff = <usize>d << 2;
  const dRows = <usize>d * rowBytes;
  for (let oy = 0; oy < oh; oy++) {
    const r0 = pad + <usize>(oy * s) * rowBytes, r1 = r0 + dRows, r2 = r1 + dRows;
    if (s == 1) {
      for (let ox = 0; ox < ow; ox += 4) {
        const o = <usize>ox << 2;
        let a = f32x4.mul(w0, v128.load(r0 + o));
        a = f32x4.add(a, f32x4.mul(w1, v128.load(r0 + o + dOff)));
        a = f32x4.add(a, f32x4.mul(w2, v128.load(r0 + o + 2 * dOff)));
        a = f32x4.add(a, f32x4.mul(w3, v128.load(r1 + o)));
        a = f32x4.add(a, f32x4.mul(w4, v128.load(r1 + o + dOff)));
        a = f32x4.add(a, f32x4.mul(w5, v128.load(r1 + o + 2 * dOff)));
        a = f32x4.add(a, f32x4.mul(w6, v128.load(r2 + o)));
        a = f32x4.add(a, f32x4.mul(w7, v128.load(r2 + o + dOff)));
        a = f32x4.add(a, f32x4.mul(w8, v128.load(r2 + o + 2 * dOff)));
        storeLanes(yp + o, clampOnStore(f32x4.add(a, bv), storeAct, p0, p1), ow - ox);
      }
    } else {
      for (let ox = 0; ox < ow; ox += 4) {
        const o = <usize>ox << 3;
        let l0 = v128.load(r0 + o), l1 = v128.load(r0 + o, 16), l2 = v128.load(r0 + o, 32);
        let ev = v128.shuffle<f32>(l0, l1, 0, 2, 4, 6);
        let a = f32x4.mul(w0, ev);
        a = f32x4.add(a, f32x4.mul(w1, v128.shuffle<f32>(l0, l1, 1, 3, 5, 7)));
        a = f32x4.add(a, f32x4.mul(w2, v128.shuffle<f32>(ev, l2, 1, 2, 3, 4)));
        l0 = v128.load(r1 + o); l1 = v128.load(r1 + o, 16); l2 = v128.load(r1 + o, 32);
        ev = v128.shuffle<f32>(l0, l1, 0, 2, 4, 6);
        a = f32x4.add(a, f32x4.mul(w3, ev));
        a = f32x4.add(a, f32x4.mul(w4, v128.shuffle<f32>(l0, l1, 1, 3, 5, 7)));
        a = f32x4.add(a, f32x4.mul(w5, v128.shuffle<f32>(ev, l2, 1, 2, 3, 4)));
        l0 = v128.load(r2 + o); l1 = v128.load(r2 + o, 16); l2 = v128.load(r2 + o, 32);
        ev = v128.shuffle<f32>(l0, l1, 0, 2, 4, 6);
        a = f32x4.add(a, f32x4.mul(w6, ev));
        a = f32x4.add(a, f32x4.mul(w7, v128.shuffle<f32>(l0, l1, 1, 3, 5, 7)));
        a = f32x4.add(a, f32x4.mul(w8, v128.shuffle<f32>(ev, l2, 1, 2, 3, 4)));
        storeLanes(yp + (<usize>ox << 2), clampOnStore(f32x4.add(a, bv), storeAct, p0, p1), ow - ox);
      }
    }
    activate_rows(yp, 0, 1, ow, act, p0, p1);
    yp += <usize>ow << 2;
  }
}

/**
 * Depthwise 3x3, stride 1 or 2, any pads, dilation `d` (stride 1 only; DeepLab's atrous layers),
 * batch folded into `planes`. Each plane is first copied into `pad`, a zero-bordered scratch plane
 * (`pt` zero rows on top, `pl` zero columns on the left, zeros after each row up to rowLen and
 * below the last row), so that every output column goes 4 at a time without bounds checks. Stride
 * 2 splits two loads into even and odd columns and shifts the even ones by one for the third tap.
 */
export function conv_f32_dw3x3_simd(
  x: usize, wp: usize, y: usize, geom: usize, pad: usize, rowLen: i32,
  act: i32, p0: f32, p1: f32,
): void {
  const c = load<i32>(geom, GEOM_C), planes = load<i32>(geom, GEOM_N) * c;
  const h = load<i32>(geom, GEOM_H), w = load<i32>(geom, GEOM_W), oh = load<i32>(geom, GEOM_OH);
  const ow = load<i32>(geom, GEOM_OW), s = load<i32>(geom, GEOM_SH), pt = load<i32>(geom, GEOM_PT);
  const pl = load<i32>(geom, GEOM_PL), d = load<i32>(geom, GEOM_DH);
  const rowBytes = <usize>rowLen << 2;
  for (let p = 0; p < planes; p++) {
    fillPadded(x + <usize>p * <usize>h * <usize>w * 4, h, w, pad, rowBytes, pt, pl);
    const wq = wp + (<usize>(p % c) << 6);
    const yp = y + <usize>p * <usize>oh * <usize>ow * 4;
    if (act == ACT_CLAMP) dw3x3Plane(pad, rowLen, wq, yp, oh, ow, s, d, true, act, p0, p1);
    else dw3x3Plane(pad, rowLen, wq, yp, oh, ow, s, d, false, act, p0, p1);
  }
}

/** Copy plane p of x into the interior of the zero-bordered scratch plane `pad`. */
@inline
function fillPadded(xp: usize, h: i32, w: i32, pad: usize, rowBytes: usize, pt: i32, pl: i32): void {
  const first = pad + <usize>pt * rowBytes + (<usize>pl << 2);
  for (let iy = 0; iy < h; iy++) copyFloats(first + <usize>iy * rowBytes, xp + <usize>iy * <usize>w * 4, w);
}

/**
 * Depthwise conv with any kernel, stride, dilation and pads (weights per channel: kh*kw, then the
 * bias, padded to a multiple of 4 floats), on a zero-bordered copy of each plane like
 * conv_f32_dw3x3_simd; taps are loaded 4 outputs at a time (strided for strides above 1).
 */
export function conv_f32_dw_simd(
  x: usize, wp: usize, y: usize, geom: usize,
  pad: usize, rowLen: i32, act: i32, p0: f32, p1: f32,
): void {
  const c = load<i32>(geom, GEOM_C), planes = load<i32>(geom, GEOM_N) * c;
  const h = load<i32>(geom, GEOM_H), w = load<i32>(geom, GEOM_W), oh = load<i32>(geom, GEOM_OH);
  const ow = load<i32>(geom, GEOM_OW), kh = load<i32>(geom, GEOM_KH), kw = load<i32>(geom, GEOM_KW);
  const sh = load<i32>(geom, GEOM_SH), sw = load<i32>(geom, GEOM_SW), dh = load<i32>(geom, GEOM_DH);
  const dw = load<i32>(geom, GEOM_DW), pt = load<i32>(geom, GEOM_PT), pl = load<i32>(geom, GEOM_PL);
  const per = (kh * kw + 1 + 3) & ~3;
  const rowBytes = <usize>rowLen << 2;
  for (let p = 0; p < planes; p++) {
    fillPadded(x + <usize>p * <usize>h * <usize>w * 4, h, w, pad, rowBytes, pt, pl);
    const wq = wp + <usize>(p % c) * <usize>per * 4;
    const bias = v128.load32_splat(wq + (<usize>(kh * kw) << 2));
    let yp = y + <usize>p * <usize>oh * <usize>ow * 4;
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox += 4) {
        let a = f32x4.splat(0);
        for (let ky = 0; ky < kh; ky++) {
          const r = pad + <usize>(oy * sh + ky * dh) * rowBytes + (<usize>(ox * sw) << 2);
          for (let kx = 0; kx < kw; kx++) {
            const v = loadStrided(r + (<usize>(kx * dw) << 2), sw);
            a = f32x4.add(a, f32x4.mul(v128.load32_splat(wq + (<usize>(ky * kw + kx) << 2)), v));
          }
        }
        storeLanes(yp + (<usize>ox << 2), clampOnStore(f32x4.add(a, bias), act, p0, p1), ow - ox);
      }
      activate_rows(yp, 0, 1, ow, act, p0, p1);
      yp += <usize>ow << 2;
    }
  }
}

/** acc + the five taps of one kernel row (weights at wr) on the 4 outputs whose inputs start at r. */
@inline
function dw5Row(r: usize, wr: usize, acc: v128): v128 {
  acc = f32x4.add(acc, f32x4.mul(v128.load32_splat(wr), v128.load(r)));
  acc = f32x4.add(acc, f32x4.mul(v128.load32_splat(wr, 4), v128.load(r, 4)));
  acc = f32x4.add(acc, f32x4.mul(v128.load32_splat(wr, 8), v128.load(r, 8)));
  acc = f32x4.add(acc, f32x4.mul(v128.load32_splat(wr, 12), v128.load(r, 12)));
  return f32x4.add(acc, f32x4.mul(v128.load32_splat(wr, 16), v128.load(r, 16)));
}

/**
 * Depthwise 5x5, stride 1, dilation 1, any pads (PP-OCR's blocks), on the zero-bordered plane copy
 * of conv_f32_dw_simd (same weight packing: 25 taps, the bias, 2 floats of padding): 8 outputs
 * per step with the 25 taps unrolled, summed in conv_f32_dw_simd's order (0, then each tap in
 * row-major order, then the bias), so the outputs are that kernel's bit for bit.
 */
export function conv_f32_dw5x5_simd(
  x: usize, wp: usize, y: usize, geom: usize, pad: usize, rowLen: i32,
  act: i32, p0: f32, p1: f32,
): void {
  const c = load<i32>(geom, GEOM_C), planes = load<i32>(geom, GEOM_N) * c;
  const h = load<i32>(geom, GEOM_H), w = load<i32>(geom, GEOM_W), oh = load<i32>(geom, GEOM_OH);
  const ow = load<i32>(geom, GEOM_OW), pt = load<i32>(geom, GEOM_PT), pl = load<i32>(geom, GEOM_PL);
  const rowBytes = <usize>rowLen << 2;
  for (let p = 0; p < planes; p++) {
    fillPadded(x + <usize>p * <usize>h * <usize>w * 4, h, w, pad, rowBytes, pt, pl);
    const wq = wp + <usize>(p % c) * 112;
    const bias = v128.load32_splat(wq, 100);
    let yp = y + <usize>p * <usize>oh * <usize>ow * 4;
    for (let oy = 0; oy < oh; oy++) {
      const r0 = pad + <usize>oy * rowBytes;
      for (let ox = 0; ox < ow; ox += 8) {
        const r = r0 + (<usize>ox << 2);
        let a0 = f32x4.splat(0), a1 = a0;
        for (let ky = 0; ky < 5; ky++) {
          const rr = r + <usize>ky * rowBytes, wr = wq + <usize>ky * 20;
          a0 = dw5Row(rr, wr, a0);
          a1 = dw5Row(rr + 16, wr, a1);
        }
        storeLanes(yp + (<usize>ox << 2), clampOnStore(f32x4.add(a0, bias), act, p0, p1), ow - ox);
        if (ox + 4 < ow) storeLanes(yp + (<usize>ox << 2) + 16, clampOnStore(f32x4.add(a1, bias), act, p0, p1), ow - ox - 4);
      }
      activate_rows(yp, 0, 1, ow, act, p0, p1);
      yp += <usize>ow << 2;
    }
  }
}

/**
 * Stride-1 conv (any kernel, dilation, pads, groups) as GEMM straight on the input: for an
 * output tile of 8 pixels of one row whose taps all fall inside the image, the k = cg*kh*kw rows
 * of the product are the input read at k fixed offsets from the tile (`rows`, byte offsets
 * (ic*h + ky*dh)*w + kx*dw), so no im2col copy is made. Tiles touching the pads gather their
 * k x 8 values, zeros outside, into `panel` first. Every tile's sums are the im2col kernel's.
 */
export function conv_f32_shifted_simd(
  x: usize, wp: usize, bias: usize, y: usize, rows: usize, panel: usize, geom: usize,
  act: i32, p0: f32, p1: f32,
): void {
  const batch = load<i32>(geom, GEOM_N), groups = load<i32>(geom, GEOM_GROUP);
  const cg = load<i32>(geom, GEOM_C) / groups, mg = load<i32>(geom, GEOM_M) / groups;
  const h = load<i32>(geom, GEOM_H), w = load<i32>(geom, GEOM_W), oh = load<i32>(geom, GEOM_OH);
  const ow = load<i32>(geom, GEOM_OW), kh = load<i32>(geom, GEOM_KH), kw = load<i32>(geom, GEOM_KW);
  const dh = load<i32>(geom, GEOM_DH), dw = load<i32>(geom, GEOM_DW), pt = load<i32>(geom, GEOM_PT);
  const pl = load<i32>(geom, GEOM_PL);
  const k = cg * kh * kw;
  const mgPad = (mg + 3) & ~3;
  const inPlane = <usize>h * <usize>w * 4;
  const outPlane = <usize>oh * <usize>ow * 4;
  const yStride = outPlane;
  // Output columns [ox0, ox1) and rows [oy0, oy1) have every tap inside the image.
  const oy0 = pt, oy1 = h - (kh - 1) * dh + pt;
  const ox0 = pl, ox1 = w - (kw - 1) * dw + pl;
  for (let b = 0; b < batch; b++) {
    for (let g = 0; g < groups; g++) {
      const xg = x + <usize>(b * groups + g) * <usize>cg * inPlane;
      const yg = y + <usize>(b * groups + g) * <usize>mg * outPlane;
      const wg = wp + <usize>g * <usize>mgPad * <usize>k * 4;
      const bg = bias + <usize>g * <usize>mgPad * 4;
      for (let oy = 0; oy < oh; oy++) {
        const rowInside = oy >= oy0 && oy < oy1;
        for (let ox = 0; ox < ow; ox += 8) {
          const nr = min(8, ow - ox);
          const yt = yg + (<usize>(oy * ow + ox) << 2);
          if (rowInside && ox >= ox0 && ox + 8 <= ox1) {
            const v = xg + (<usize>((oy - pt) * w + ox - pl) << 2);
            for (let m0 = 0; m0 < mg; m0 += 4) {
              tile4x8(wg + <usize>m0 * <usize>k * 4, v, 0, k, bg + (<usize>m0 << 2), 0, yt + <usize>m0 * yStride, yStride, min(4, mg - m0), nr, act, p0, p1, rows);
            }
          } else {
            im2col(xg, panel, 8, oy * ow + ox, nr, cg, h, w, ow, kh, kw, 1, 1, dh, dw, pt, pl);
            for (let m0 = 0; m0 < mg; m0 += 4) {
              tile4x8(wg + <usize>m0 * <usize>k * 4, panel, 32, k, bg + (<usize>m0 << 2), 0, yt + <usize>m0 * yStride, yStride, min(4, mg - m0), nr, act, p0, p1);
            }
          }
        }
        activate_rows(yg + <usize>(oy * ow) * 4, yStride, mg, ow, act, p0, p1);
      }
    }
  }
}

/**
 * 3x3 stride-1 conv (group 1, dilation 1, any pads) by Winograd's F(2x2, 3x3): each 2x2 block of
 * outputs is A^T [ sum over ic of (G g G^T) . (B^T d B) ] A, d the 4x4 input patch, so the
 * products are 16 GEMMs [m x c] x [c x tiles], 16 multiply-adds per tile and channel pair where
 * the direct conv takes 36. The weights arrive transformed (U = G g G^T, computed in float64 by
 * sdk/ops/conv.ts), packed per transform position like gemm_f32_packed_simd's left operand:
 * 16 x [ceil(m/4)][c][4]. Tiles go by one tile row and `tb` tiles (a multiple of 8) at a time:
 * `v` holds their input transforms (16 x c x tb), `mm` the products (16 x m x tb), `patch` the
 * 4 input rows of one channel, zeros outside the image (4 x (2 tb + 12) floats).
 */
export function conv_f32_winograd_simd(
  x: usize, u: usize, bias: usize, y: usize, v: usize, mm: usize, patch: usize, tb: i32, geom: usize,
  act: i32, p0: f32, p1: f32,
): void {
  const batch = load<i32>(geom, GEOM_N), c = load<i32>(geom, GEOM_C), m = load<i32>(geom, GEOM_M);
  const h = load<i32>(geom, GEOM_H), w = load<i32>(geom, GEOM_W), oh = load<i32>(geom, GEOM_OH);
  const ow = load<i32>(geom, GEOM_OW), pt = load<i32>(geom, GEOM_PT), pl = load<i32>(geom, GEOM_PL);
  const th = (oh + 1) >> 1, tw = (ow + 1) >> 1;
  const mPad = (m + 3) & ~3;
  const ld = <usize>tb << 2; // bytes per row of v and mm
  const vPos = <usize>c * ld, mPos = <usize>m * ld, uPos = <usize>mPad * <usize>c * 4;
  const pw = 2 * tb + 12;
  const pRow = <usize>pw << 2;
  const inPlane = <usize>h * <usize>w * 4, outPlane = <usize>oh * <usize>ow * 4;
  for (let b = 0; b < batch; b++) {
    const xb = x + <usize>b * <usize>c * inPlane;
    const yb = y + <usize>b * <usize>m * outPlane;
    for (let ty = 0; ty < th; ty++) {
      for (let t0 = 0; t0 < tw; t0 += tb) {
        const nt = min(tb, tw - t0);
        const ix0 = 2 * t0 - pl, iy0 = 2 * ty - pt;
        // Input transforms, channel by channel, four tiles per vector.
        for (let ic = 0; ic < c; ic++) {
          gatherPatch(xb + <usize>ic * inPlane, h, w, iy0, ix0, 2 * nt + 2, patch, pRow);
          const vc = v + <usize>ic * ld;
          for (let t = 0; t < nt; t += 4) inputTransform4(patch + (<usize>t << 3), pRow, vc + (<usize>t << 2), vPos);
        }
        // The 16 products.
        for (let q = 0; q < 16; q++) {
          const uq = u + <usize>q * uPos, vq = v + <usize>q * vPos, mq = mm + <usize>q * mPos;
          for (let m0 = 0; m0 < m; m0 += 4) {
            const mr = min(4, m - m0);
            for (let j = 0; j < nt; j += 8) {
              tile4x8(uq + <usize>m0 * <usize>c * 4, vq + (<usize>j << 2), ld, c, 0, 0, mq + <usize>m0 * ld + (<usize>j << 2), ld, mr, min(8, nt - j), 0, 0, 0);
            }
          }
        }
        // Output transforms, bias and activation, stored as 2 rows of 2 nt columns.
        const oy = 2 * ty, ox = 2 * t0;
        const rows = min(2, oh - oy), cols = min(2 * nt, ow - ox);
        for (let oc = 0; oc < m; oc++) {
          const yo = yb + <usize>oc * outPlane + (<usize>(oy * ow + ox) << 2);
          const bv = v128.load32_splat(bias + (<usize>oc << 2));
          for (let t = 0; t < nt; t += 4) {
            outputTransform4(mm + <usize>oc * ld + (<usize>t << 2), mPos, bv, yo + (<usize>t << 3), <usize>ow << 2, rows, cols - 2 * t, act, p0, p1);
          }
          activate_rows(yo, <usize>ow << 2, rows, cols, act, p0, p1);
        }
      }
    }
  }
}

/** Rows iy0..iy0+3, columns ix0..ix0+n-1 of one input plane into `patch` (zeros outside). */
@inline
function gatherPatch(xp: usize, h: i32, w: i32, iy0: i32, ix0: i32, n: i32, patch: usize, pRow: usize): void {
  const lo = max(0, -ix0), hi = min(n, w - ix0); // columns of the patch inside the row
  for (let r = 0; r < 4; r++) {
    const dst = patch + <usize>r * pRow;
    const iy = iy0 + r;
    if (iy < 0 || iy >= h || hi <= lo) {
      memory.fill(dst, 0, <usize>n << 2);
      continue;
    }
    if (lo > 0) memory.fill(dst, 0, <usize>lo << 2);
    copyFloats(dst + (<usize>lo << 2), xp + (<usize>(iy * w + ix0 + lo) << 2), hi - lo);
    if (hi < n) memory.fill(dst + (<usize>hi << 2), 0, <usize>(n - hi) << 2);
  }
}

/** B^T d B for four tiles whose patches start at p (columns 2i for tile i), stored at
 *  v + q * vPos for the 16 positions q = 4 * row + column. */
@inline
function inputTransform4(p: usize, pRow: usize, v: usize, vPos: usize): void {
  // d[r][j] for the four tiles: even, odd and shifted columns of three loads per row.
  let l0 = v128.load(p), l1 = v128.load(p, 16), l2 = v128.load(p, 32);
  let e = v128.shuffle<f32>(l0, l1, 0, 2, 4, 6), o = v128.shuffle<f32>(l0, l1, 1, 3, 5, 7);
  const d00 = e, d01 = o, d02 = v128.shuffle<f32>(e, l2, 1, 2, 3, 4), d03 = v128.shuffle<f32>(o, l2, 1, 2, 3, 5);
  p += pRow;
  l0 = v128.load(p); l1 = v128.load(p, 16); l2 = v128.load(p, 32);
  e = v128.shuffle<f32>(l0, l1, 0, 2, 4, 6); o = v128.shuffle<f32>(l0, l1, 1, 3, 5, 7);
  const d10 = e, d11 = o, d12 = v128.shuffle<f32>(e, l2, 1, 2, 3, 4), d13 = v128.shuffle<f32>(o, l2, 1, 2, 3, 5);
  p += pRow;
  l0 = v128.load(p); l1 = v128.load(p, 16); l2 = v128.load(p, 32);
  e = v128.shuffle<f32>(l0, l1, 0, 2, 4, 6); o = v128.shuffle<f32>(l0, l1, 1, 3, 5, 7);
  const d20 = e, d21 = o, d22 = v128.shuffle<f32>(e, l2, 1, 2, 3, 4), d23 = v128.shuffle<f32>(o, l2, 1, 2, 3, 5);
  p += pRow;
  l0 = v128.load(p); l1 = v128.load(p, 16); l2 = v128.load(p, 32);
  e = v128.shuffle<f32>(l0, l1, 0, 2, 4, 6); o = v128.shuffle<f32>(l0, l1, 1, 3, 5, 7);
  const d30 = e, d31 = o, d32 = v128.shuffle<f32>(e, l2, 1, 2, 3, 4), d33 = v128.shuffle<f32>(o, l2, 1, 2, 3, 5);
  // B^T d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3; then the same on the columns.
  transformRow(f32x4.sub(d00, d20), f32x4.sub(d01, d21), f32x4.sub(d02, d22), f32x4.sub(d03, d23), v, vPos);
  transformRow(f32x4.add(d10, d20), f32x4.add(d11, d21), f32x4.add(d12, d22), f32x4.add(d13, d23), v + 4 * vPos, vPos);
  transformRow(f32x4.sub(d20, d10), f32x4.sub(d21, d11), f32x4.sub(d22, d12), f32x4.sub(d23, d13), v + 8 * vPos, vPos);
  transformRow(f32x4.sub(d10, d30), f32x4.sub(d11, d31), f32x4.sub(d12, d32), f32x4.sub(d13, d33), v + 12 * vPos, vPos);
}

@inline
function transformRow(s0: v128, s1: v128, s2: v128, s3: v128, v: usize, vPos: usize): void {
  v128.store(v, f32x4.sub(s0, s2));
  v128.store(v + vPos, f32x4.add(s1, s2));
  v128.store(v + 2 * vPos, f32x4.sub(s2, s1));
  v128.store(v + 3 * vPos, f32x4.sub(s1, s3));
}

/** A^T M A + bias for four tiles (M at mm + q * mPos), Relu/Clip applied, stored as two output
 *  rows (`rows` of them valid) of 8 columns (`cols` valid). */
@inline
function outputTransform4(mm: usize, mPos: usize, bv: v128, y: usize, yRow: usize, rows: i32, cols: i32, act: i32, p0: f32, p1: f32): void {
  // A^T M: row 0 = M0 + M1 + M2, row 1 = M1 - M2 - M3 (Mi the rows of M), per column j.
  let r00: v128, r01: v128, r02: v128, r03: v128, r10: v128, r11: v128, r12: v128, r13: v128;
  {
    const a = v128.load(mm), b = v128.load(mm + 4 * mPos), c = v128.load(mm + 8 * mPos), d = v128.load(mm + 12 * mPos);
    r00 = f32x4.add(f32x4.add(a, b), c); r10 = f32x4.sub(f32x4.sub(b, c), d);
  }
  {
    const a = v128.load(mm + mPos), b = v128.load(mm + 5 * mPos), c = v128.load(mm + 9 * mPos), d = v128.load(mm + 13 * mPos);
    r01 = f32x4.add(f32x4.add(a, b), c); r11 = f32x4.sub(f32x4.sub(b, c), d);
  }
  {
    const a = v128.load(mm + 2 * mPos), b = v128.load(mm + 6 * mPos), c = v128.load(mm + 10 * mPos), d = v128.load(mm + 14 * mPos);
    r02 = f32x4.add(f32x4.add(a, b), c); r12 = f32x4.sub(f32x4.sub(b, c), d);
  }
  {
    const a = v128.load(mm + 3 * mPos), b = v128.load(mm + 7 * mPos), c = v128.load(mm + 11 * mPos), d = v128.load(mm + 15 * mPos);
    r03 = f32x4.add(f32x4.add(a, b), c); r13 = f32x4.sub(f32x4.sub(b, c), d);
  }
  // Then A on the right: column 0 = r0 + r1 + r2, column 1 = r1 - r2 - r3.
  const y00 = clampOnStore(f32x4.add(f32x4.add(f32x4.add(r00, r01), r02), bv), act, p0, p1);
  const y01 = clampOnStore(f32x4.add(f32x4.sub(f32x4.sub(r01, r02), r03), bv), act, p0, p1);
  storeOutputRow(y, y00, y01, cols);
  if (rows > 1) {
    const y10 = clampOnStore(f32x4.add(f32x4.add(f32x4.add(r10, r11), r12), bv), act, p0, p1);
    const y11 = clampOnStore(f32x4.add(f32x4.sub(f32x4.sub(r11, r12), r13), bv), act, p0, p1);
    storeOutputRow(y + yRow, y10, y11, cols);
  }
}

/** Columns (2i, 2i + 1) of tile i = lanes i of (c0, c1), interleaved; the first `n` stored. */
@inline
function storeOutputRow(y: usize, c0: v128, c1: v128, n: i32): void {
  const lo = v128.shuffle<f32>(c0, c1, 0, 4, 1, 5), hi = v128.shuffle<f32>(c0, c1, 2, 6, 3, 7);
  if (n >= 8) {
    v128.store(y, lo);
    v128.store(y, hi, 16);
    return;
  }
  storeLanes(y, lo, n);
  if (n > 4) storeLanes(y + 16, hi, n - 4);
}

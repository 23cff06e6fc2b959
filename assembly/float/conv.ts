// Conv kernels over NCHW float32. Weights arrive packed by sdk/ops/conv.ts:
//  - GEMM convs: per group, [ceil(mg/4)][k][4] with k = cg*kh*kw, and bias padded per group to a
//    multiple of 4 (see gemm.ts);
//  - depthwise convs: per channel 16 floats = kh*kw weights then the bias (generic: kh*kw+1
//    rounded up to 4).
import { ACT_CLAMP, ACT_NONE, activate_rows, clampOnStore } from './activation';
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
  x: usize, wp: usize, bias: usize, y: usize, panel: usize, nb: i32,
  batch: i32, groups: i32, cg: i32, mg: i32, h: i32, w: i32, oh: i32, ow: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, dh: i32, dw: i32, pt: i32, pl: i32,
  act: i32, p0: f32, p1: f32,
): void {
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
  x: usize, wp: usize, y: usize, planes: i32, c: i32,
  h: i32, w: i32, oh: i32, ow: i32, s: i32, pt: i32, pl: i32, d: i32, pad: usize, rowLen: i32,
  act: i32, p0: f32, p1: f32,
): void {
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
  x: usize, wp: usize, y: usize, planes: i32, c: i32,
  h: i32, w: i32, oh: i32, ow: i32, kh: i32, kw: i32, sh: i32, sw: i32, dh: i32, dw: i32, pt: i32, pl: i32,
  pad: usize, rowLen: i32, act: i32, p0: f32, p1: f32,
): void {
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

/**
 * Stride-1 conv (any kernel, dilation, pads, groups) as GEMM straight on the input: for an
 * output tile of 8 pixels of one row whose taps all fall inside the image, the k = cg*kh*kw rows
 * of the product are the input read at k fixed offsets from the tile (`rows`, byte offsets
 * (ic*h + ky*dh)*w + kx*dw), so no im2col copy is made. Tiles touching the pads gather their
 * k x 8 values, zeros outside, into `panel` first. Every tile's sums are the im2col kernel's.
 */
export function conv_f32_shifted_simd(
  x: usize, wp: usize, bias: usize, y: usize, rows: usize, panel: usize,
  batch: i32, groups: i32, cg: i32, mg: i32, h: i32, w: i32, oh: i32, ow: i32,
  kh: i32, kw: i32, dh: i32, dw: i32, pt: i32, pl: i32,
  act: i32, p0: f32, p1: f32,
): void {
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

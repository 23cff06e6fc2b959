// Conv kernels over NCHW float32. Weights arrive packed by sdk/ops/conv.ts:
//  - GEMM convs: per group, [ceil(mg/4)][k][4] with k = cg*kh*kw, and bias padded per group to a
//    multiple of 4 (see gemm.ts);
//  - depthwise convs: per channel 16 floats = kh*kw weights then the bias (generic: kh*kw+1
//    rounded up to 4).
import { activate, activate1 } from './activation';
import { gemm_f32_packed_simd } from './gemm';

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
            if (sw == 1) {
              memory.copy(dst + (<usize>t0 << 2), src + (<usize>(ix0 + t0) << 2), <usize>(t1 - t0) << 2);
            } else {
              for (let t = t0; t < t1; t++) store<f32>(dst + (<usize>t << 2), load<f32>(src + (<usize>(ix0 + t * sw) << 2)));
            }
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

/** One depthwise output with every bounds check: the edges of the specialised kernels. */
@inline
function dwPoint(
  xp: usize, wq: usize, h: i32, w: i32, kh: i32, kw: i32, iy0: i32, ix0: i32, dh: i32, dw: i32,
): f32 {
  let acc: f32 = 0;
  for (let ky = 0; ky < kh; ky++) {
    const iy = iy0 + ky * dh;
    if (iy < 0 || iy >= h) continue;
    for (let kx = 0; kx < kw; kx++) {
      const ix = ix0 + kx * dw;
      if (ix < 0 || ix >= w) continue;
      acc += load<f32>(xp + ((<usize>iy * <usize>w + <usize>ix) << 2)) * load<f32>(wq + (<usize>(ky * kw + kx) << 2));
    }
  }
  return acc;
}

/** Input row iy of a plane, or the zero row when iy is in the padding. */
@inline
function rowOrZero(xp: usize, iy: i32, h: i32, w: i32, zero: usize): usize {
  return iy >= 0 && iy < h ? xp + <usize>iy * <usize>w * 4 : zero;
}

/**
 * Depthwise 3x3, stride 1, any pads and dilation `d` (DeepLab's atrous layers), batch folded
 * into `planes`. Vectors of 4 outputs where every tap is inside the row; rows in the padding
 * read `zero` (a zero-filled row of at least w+4 floats); the remaining columns go one by one.
 */
export function conv_f32_dw3x3s1_simd(
  x: usize, wp: usize, y: usize, planes: i32, c: i32,
  h: i32, w: i32, oh: i32, ow: i32, pt: i32, pl: i32, d: i32, zero: usize,
  act: i32, p0: f32, p1: f32,
): void {
  // Vector starts ox with ox - pl >= 0 and ox + 3 - pl + 2d <= w - 1.
  const vFirst = pl;
  const vLast = min(ow - 4, w - 4 - 2 * d + pl);
  const dOff = <usize>d << 2;
  for (let p = 0; p < planes; p++) {
    const wq = wp + (<usize>(p % c) << 6);
    const xp = x + <usize>p * <usize>h * <usize>w * 4;
    let yp = y + <usize>p * <usize>oh * <usize>ow * 4;
    const w0 = v128.load32_splat(wq), w1 = v128.load32_splat(wq, 4), w2 = v128.load32_splat(wq, 8);
    const w3 = v128.load32_splat(wq, 12), w4 = v128.load32_splat(wq, 16), w5 = v128.load32_splat(wq, 20);
    const w6 = v128.load32_splat(wq, 24), w7 = v128.load32_splat(wq, 28), w8 = v128.load32_splat(wq, 32);
    const bias = load<f32>(wq, 36);
    const bv = f32x4.splat(bias);
    for (let oy = 0; oy < oh; oy++) {
      const iy = oy - pt;
      const r0 = rowOrZero(xp, iy, h, w, zero) - (<usize>pl << 2);
      const r1 = rowOrZero(xp, iy + d, h, w, zero) - (<usize>pl << 2);
      const r2 = rowOrZero(xp, iy + 2 * d, h, w, zero) - (<usize>pl << 2);
      let ox = 0;
      for (; ox < min(vFirst, ow); ox++) {
        store<f32>(yp + (<usize>ox << 2), activate1(dwPoint(xp, wq, h, w, 3, 3, iy, ox - pl, d, d) + bias, act, p0, p1));
      }
      for (; ox <= vLast; ox += 4) {
        const o = <usize>ox << 2;
        let a = f32x4.add(bv, f32x4.mul(w0, v128.load(r0 + o)));
        a = f32x4.add(a, f32x4.mul(w1, v128.load(r0 + o + dOff)));
        a = f32x4.add(a, f32x4.mul(w2, v128.load(r0 + o + 2 * dOff)));
        a = f32x4.add(a, f32x4.mul(w3, v128.load(r1 + o)));
        a = f32x4.add(a, f32x4.mul(w4, v128.load(r1 + o + dOff)));
        a = f32x4.add(a, f32x4.mul(w5, v128.load(r1 + o + 2 * dOff)));
        a = f32x4.add(a, f32x4.mul(w6, v128.load(r2 + o)));
        a = f32x4.add(a, f32x4.mul(w7, v128.load(r2 + o + dOff)));
        a = f32x4.add(a, f32x4.mul(w8, v128.load(r2 + o + 2 * dOff)));
        v128.store(yp + o, activate(a, act, p0, p1));
      }
      for (; ox < ow; ox++) {
        store<f32>(yp + (<usize>ox << 2), activate1(dwPoint(xp, wq, h, w, 3, 3, iy, ox - pl, d, d) + bias, act, p0, p1));
      }
      yp += <usize>ow << 2;
    }
  }
}

/**
 * Depthwise 3x3, stride 2, dilation 1. Four outputs need input columns 2ox-pl .. 2ox-pl+8: two
 * loads split into even and odd lanes, and the even lanes shifted by one for the third tap.
 */
export function conv_f32_dw3x3s2_simd(
  x: usize, wp: usize, y: usize, planes: i32, c: i32,
  h: i32, w: i32, oh: i32, ow: i32, pt: i32, pl: i32, zero: usize,
  act: i32, p0: f32, p1: f32,
): void {
  const vFirst = (pl + 1) >> 1;
  // 2ox - pl + 8 <= w - 1, and 4 outputs fit.
  const vLast = min(ow - 4, (w - 9 + pl) >> 1);
  for (let p = 0; p < planes; p++) {
    const wq = wp + (<usize>(p % c) << 6);
    const xp = x + <usize>p * <usize>h * <usize>w * 4;
    let yp = y + <usize>p * <usize>oh * <usize>ow * 4;
    const w0 = v128.load32_splat(wq), w1 = v128.load32_splat(wq, 4), w2 = v128.load32_splat(wq, 8);
    const w3 = v128.load32_splat(wq, 12), w4 = v128.load32_splat(wq, 16), w5 = v128.load32_splat(wq, 20);
    const w6 = v128.load32_splat(wq, 24), w7 = v128.load32_splat(wq, 28), w8 = v128.load32_splat(wq, 32);
    const bias = load<f32>(wq, 36);
    const bv = f32x4.splat(bias);
    for (let oy = 0; oy < oh; oy++) {
      const iy = 2 * oy - pt;
      const r0 = rowOrZero(xp, iy, h, w, zero) - (<usize>pl << 2);
      const r1 = rowOrZero(xp, iy + 1, h, w, zero) - (<usize>pl << 2);
      const r2 = rowOrZero(xp, iy + 2, h, w, zero) - (<usize>pl << 2);
      let ox = 0;
      for (; ox < min(vFirst, ow); ox++) {
        store<f32>(yp + (<usize>ox << 2), activate1(dwPoint(xp, wq, h, w, 3, 3, iy, 2 * ox - pl, 1, 1) + bias, act, p0, p1));
      }
      for (; ox <= vLast; ox += 4) {
        const o = <usize>ox << 3;
        let l0 = v128.load(r0 + o), l1 = v128.load(r0 + o, 16), l2 = v128.load(r0 + o, 32);
        let ev = v128.shuffle<f32>(l0, l1, 0, 2, 4, 6);
        let a = f32x4.add(bv, f32x4.mul(w0, ev));
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
        v128.store(yp + (<usize>ox << 2), activate(a, act, p0, p1));
      }
      for (; ox < ow; ox++) {
        store<f32>(yp + (<usize>ox << 2), activate1(dwPoint(xp, wq, h, w, 3, 3, iy, 2 * ox - pl, 1, 1) + bias, act, p0, p1));
      }
      yp += <usize>ow << 2;
    }
  }
}

/**
 * Depthwise conv with any kernel, stride, dilation and pads (weights per channel: kh*kw, then
 * the bias, padded to a multiple of 4 floats). Stride-1 rows get vectors where all taps are inside.
 */
export function conv_f32_dw_simd(
  x: usize, wp: usize, y: usize, planes: i32, c: i32,
  h: i32, w: i32, oh: i32, ow: i32, kh: i32, kw: i32, sh: i32, sw: i32, dh: i32, dw: i32, pt: i32, pl: i32,
  act: i32, p0: f32, p1: f32,
): void {
  const per = (kh * kw + 1 + 3) & ~3;
  const vFirst = sw == 1 ? pl : ow;
  const vLast = sw == 1 ? min(ow - 4, w - 4 - (kw - 1) * dw + pl) : -1;
  for (let p = 0; p < planes; p++) {
    const wq = wp + <usize>(p % c) * <usize>per * 4;
    const bias = load<f32>(wq + (<usize>(kh * kw) << 2));
    const xp = x + <usize>p * <usize>h * <usize>w * 4;
    let yp = y + <usize>p * <usize>oh * <usize>ow * 4;
    for (let oy = 0; oy < oh; oy++) {
      const iy0 = oy * sh - pt;
      let ox = 0;
      for (; ox < min(vFirst, ow); ox++) {
        store<f32>(yp + (<usize>ox << 2), activate1(dwPoint(xp, wq, h, w, kh, kw, iy0, ox * sw - pl, dh, dw) + bias, act, p0, p1));
      }
      for (; ox <= vLast; ox += 4) {
        let a = f32x4.splat(bias);
        for (let ky = 0; ky < kh; ky++) {
          const iy = iy0 + ky * dh;
          if (iy < 0 || iy >= h) continue;
          const r = xp + ((<usize>iy * <usize>w + <usize>(ox - pl)) << 2);
          for (let kx = 0; kx < kw; kx++) {
            a = f32x4.add(a, f32x4.mul(v128.load32_splat(wq + (<usize>(ky * kw + kx) << 2)), v128.load(r + (<usize>(kx * dw) << 2))));
          }
        }
        v128.store(yp + (<usize>ox << 2), activate(a, act, p0, p1));
      }
      for (; ox < ow; ox++) {
        store<f32>(yp + (<usize>ox << 2), activate1(dwPoint(xp, wq, h, w, kh, kw, iy0, ox * sw - pl, dh, dw) + bias, act, p0, p1));
      }
      yp += <usize>ow << 2;
    }
  }
}

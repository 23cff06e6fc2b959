// Resize of the two innermost axes of NCHW planes, driven by per-axis tables computed by
// sdk/ops/resize.ts: for every output row and column its source index (i32) and, for linear, the
// second source index (i32) and the weight of the second tap (f32).

/** Nearest: out[oy][ox] = in[iy[oy]][ix[ox]]; a row equal to the previous one is copied. Elements
 *  of 4, 2 or 1 bytes (float, and the fixed-point engine's integers). */
@inline
function resizeNearest<T>(x: usize, y: usize, planes: i32, h: i32, w: i32, oh: i32, ow: i32, iy: usize, ix: usize): void {
  const size = <usize>sizeof<T>();
  const rowBytes = <usize>ow * size;
  for (let p = 0; p < planes; p++) {
    const xp = x + <usize>p * <usize>h * <usize>w * size;
    let yp = y + <usize>p * <usize>oh * rowBytes;
    for (let oy = 0; oy < oh; oy++) {
      const src = load<i32>(iy + (<usize>oy << 2));
      if (oy > 0 && src == load<i32>(iy + (<usize>(oy - 1) << 2))) {
        memory.copy(yp, yp - rowBytes, rowBytes);
      } else {
        const r = xp + <usize>src * <usize>w * size;
        for (let ox = 0; ox < ow; ox++) {
          store<T>(yp + <usize>ox * size, load<T>(r + <usize>load<i32>(ix + (<usize>ox << 2)) * size));
        }
      }
      yp += rowBytes;
    }
  }
}

export function resize_x32_nearest(x: usize, y: usize, planes: i32, h: i32, w: i32, oh: i32, ow: i32, iy: usize, ix: usize): void {
  resizeNearest<u32>(x, y, planes, h, w, oh, ow, iy, ix);
}

export function resize_x16_nearest(x: usize, y: usize, planes: i32, h: i32, w: i32, oh: i32, ow: i32, iy: usize, ix: usize): void {
  resizeNearest<u16>(x, y, planes, h, w, oh, ow, iy, ix);
}

export function resize_x8_nearest(x: usize, y: usize, planes: i32, h: i32, w: i32, oh: i32, ow: i32, iy: usize, ix: usize): void {
  resizeNearest<u8>(x, y, planes, h, w, oh, ow, iy, ix);
}

/** Interpolate input row r along x into out (ow floats). */
@inline
function lerpRow(r: usize, out: usize, ow: i32, ix0: usize, ix1: usize, fx: usize): void {
  for (let ox = 0; ox < ow; ox++) {
    const o = <usize>ox << 2;
    const a = load<f32>(r + (<usize>load<i32>(ix0 + o) << 2));
    const b = load<f32>(r + (<usize>load<i32>(ix1 + o) << 2));
    const f = load<f32>(fx + o);
    store<f32>(out + o, a * (1 - f) + b * f);
  }
}

/**
 * Bilinear: each needed input row is interpolated along x once into one of two scratch rows
 * (`rows`, 2 x ow floats padded to a multiple of 4), then output rows blend two of them along y.
 */
export function resize_f32_bilinear(
  x: usize, y: usize, planes: i32, h: i32, w: i32, oh: i32, ow: i32,
  iy0: usize, iy1: usize, fy: usize, ix0: usize, ix1: usize, fx: usize, rows: usize,
): void {
  const stride = <usize>((ow + 3) & ~3) << 2;
  for (let p = 0; p < planes; p++) {
    const xp = x + <usize>p * <usize>h * <usize>w * 4;
    let yp = y + <usize>p * <usize>oh * <usize>ow * 4;
    // Which input row each scratch row holds (-1: none yet).
    let held0 = -1, held1 = -1;
    for (let oy = 0; oy < oh; oy++) {
      const a = load<i32>(iy0 + (<usize>oy << 2)), b = load<i32>(iy1 + (<usize>oy << 2));
      let ra: usize, rb: usize;
      if (a == held0) ra = rows;
      else if (a == held1) ra = rows + stride;
      else { ra = b == held0 ? rows + stride : rows; lerpRow(xp + <usize>a * <usize>w * 4, ra, ow, ix0, ix1, fx); if (ra == rows) held0 = a; else held1 = a; }
      if (b == held0) rb = rows;
      else if (b == held1) rb = rows + stride;
      else { rb = ra == rows ? rows + stride : rows; lerpRow(xp + <usize>b * <usize>w * 4, rb, ow, ix0, ix1, fx); if (rb == rows) held0 = b; else held1 = b; }
      const f = load<f32>(fy + (<usize>oy << 2));
      const fv = f32x4.splat(f), gv = f32x4.splat(1 - f);
      let ox = 0;
      for (; ox + 4 <= ow; ox += 4) {
        const o = <usize>ox << 2;
        v128.store(yp + o, f32x4.add(f32x4.mul(v128.load(ra + o), gv), f32x4.mul(v128.load(rb + o), fv)));
      }
      for (; ox < ow; ox++) {
        const o = <usize>ox << 2;
        store<f32>(yp + o, load<f32>(ra + o) * (1 - f) + load<f32>(rb + o) * f);
      }
      yp += <usize>ow << 2;
    }
  }
}

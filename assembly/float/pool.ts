// Pooling over NCHW float32 planes (batch and channels folded into `planes`).
/**
 * MaxPool / AveragePool with any window, stride, dilation and pads. Outputs whose window lies
 * horizontally inside the row go 4 at a time for strides 1 and 2 (stride 2 keeps the even lanes
 * of two loads); the rest one by one. `countPad`: average over pads too (count_include_pad),
 * never over the ceil_mode overhang past the end pad.
 */
export function pool_f32_simd(
  x: usize, y: usize, planes: i32, h: i32, w: i32, oh: i32, ow: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, dh: i32, dw: i32, pt: i32, pl: i32, pb: i32, pr: i32,
  isMax: bool, countPad: bool,
): void {
  const vec = sw == 1 || sw == 2;
  const vFirst = vec ? (pl + sw - 1) / sw : ow;
  const vLast = vec ? min(ow - 4, floorDiv(w - 1 - (kw - 1) * dw + pl, sw) - 3) : -1;
  for (let p = 0; p < planes; p++) {
    const xp = x + <usize>p * <usize>h * <usize>w * 4;
    let yp = y + <usize>p * <usize>oh * <usize>ow * 4;
    for (let oy = 0; oy < oh; oy++) {
      const iy0 = oy * sh - pt;
      // Rows of the window inside the input, and inside input + pads (for count_include_pad).
      let rows = 0, padRows = 0;
      for (let ky = 0; ky < kh; ky++) {
        const iy = iy0 + ky * dh;
        if (iy >= 0 && iy < h) rows++;
        if (iy < h + pb) padRows++;
      }
      let ox = 0;
      for (; ox < min(vFirst, ow); ox++) store<f32>(yp + (<usize>ox << 2), point(xp, h, w, kh, kw, iy0, ox * sw - pl, dh, dw, pb, pr, isMax, countPad));
      if (ox <= vLast) {
        const inv = f32x4.splat(<f32>1 / <f32>(countPad ? padRows * kw : rows * kw));
        for (; ox <= vLast; ox += 4) {
          let acc = f32x4.splat(isMax ? -Infinity : 0);
          for (let ky = 0; ky < kh; ky++) {
            const iy = iy0 + ky * dh;
            if (iy < 0 || iy >= h) continue;
            const r = xp + ((<usize>iy * <usize>w + <usize>(ox * sw - pl)) << 2);
            for (let kx = 0; kx < kw; kx++) {
              const q = r + (<usize>(kx * dw) << 2);
              const v = sw == 1 ? v128.load(q) : v128.shuffle<f32>(v128.load(q), v128.load(q, 16), 0, 2, 4, 6);
              acc = isMax ? f32x4.pmax(acc, v) : f32x4.add(acc, v);
            }
          }
          v128.store(yp + (<usize>ox << 2), isMax ? acc : f32x4.mul(acc, inv));
        }
      }
      for (; ox < ow; ox++) store<f32>(yp + (<usize>ox << 2), point(xp, h, w, kh, kw, iy0, ox * sw - pl, dh, dw, pb, pr, isMax, countPad));
      yp += <usize>ow << 2;
    }
  }
}

@inline
function floorDiv(a: i32, b: i32): i32 {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

function point(
  xp: usize, h: i32, w: i32, kh: i32, kw: i32, iy0: i32, ix0: i32, dh: i32, dw: i32, pb: i32, pr: i32,
  isMax: bool, countPad: bool,
): f32 {
  let acc: f32 = isMax ? -Infinity : 0;
  let count = 0;
  for (let ky = 0; ky < kh; ky++) {
    const iy = iy0 + ky * dh;
    for (let kx = 0; kx < kw; kx++) {
      const ix = ix0 + kx * dw;
      if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
        const v = load<f32>(xp + ((<usize>iy * <usize>w + <usize>ix) << 2));
        acc = isMax ? (v > acc ? v : acc) : acc + v;
        count++;
      } else if (countPad && iy < h + pb && ix < w + pr) {
        count++;
      }
    }
  }
  return isMax ? acc : acc / <f32>count;
}

/** GlobalAveragePool / GlobalMaxPool: one value per plane of `size` floats. */
export function global_pool_f32_simd(x: usize, y: usize, planes: i32, size: i32, isMax: bool): void {
  for (let p = 0; p < planes; p++) {
    const xp = x + <usize>p * <usize>size * 4;
    let acc = f32x4.splat(isMax ? -Infinity : 0);
    let i = 0;
    for (; i + 4 <= size; i += 4) {
      const v = v128.load(xp + (<usize>i << 2));
      acc = isMax ? f32x4.pmax(acc, v) : f32x4.add(acc, v);
    }
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

// Softmax and LogSoftmax along one axis of an [outer][dim][inner] tensor: max, exp(x - max) (the
// four-lane exp of activation.ts, about 1e-7 relative), sums in f64 as the reference's, then a
// scale by 1 / sum (or z - log(sum)).
import { exp4 } from './activation';

export function softmax_f32_simd(x: usize, y: usize, outer: i32, dim: i32, inner: i32, logOut: bool): void {
  if (inner == 1) {
    for (let o = 0; o < outer; o++) softmaxRow(x + <usize>o * <usize>dim * 4, y + <usize>o * <usize>dim * 4, dim, logOut);
    return;
  }
  const stride = <usize>inner << 2;
  for (let o = 0; o < outer; o++) {
    const xo = x + <usize>o * <usize>dim * stride, yo = y + <usize>o * <usize>dim * stride;
    if (inner < 4) {
      for (let i = 0; i < inner; i++) softmaxColumn1(xo + (<usize>i << 2), yo + (<usize>i << 2), dim, stride, logOut);
      continue;
    }
    // Four positions of the inner axis side by side; the last group overlaps the one before it
    // (recomputing a position gives the same values: the output is not the input's buffer).
    for (let i = 0; i < inner; i += 4) {
      const at = <usize>min(i, inner - 4) << 2;
      softmaxColumns4(xo + at, yo + at, dim, stride, logOut);
    }
  }
}

/** One contiguous row of `dim` values. */
function softmaxRow(x: usize, y: usize, dim: i32, logOut: bool): void {
  let mv = f32x4.splat(-Infinity);
  let d = 0;
  for (; d + 4 <= dim; d += 4) mv = f32x4.max(mv, v128.load(x + (<usize>d << 2)));
  let m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
  for (; d < dim; d++) m = max(m, load<f32>(x + (<usize>d << 2)));
  const ms = f32x4.splat(m);
  let s0 = f64x2.splat(0), s1 = f64x2.splat(0);
  let tail: f64 = 0;
  d = 0;
  for (; d + 4 <= dim; d += 4) {
    const e = exp4(f32x4.sub(v128.load(x + (<usize>d << 2)), ms));
    if (!logOut) v128.store(y + (<usize>d << 2), e);
    s0 = f64x2.add(s0, f64x2.promote_low_f32x4(e));
    s1 = f64x2.add(s1, f64x2.promote_low_f32x4(i32x4.shuffle(e, e, 2, 3, 0, 1)));
  }
  for (; d < dim; d++) {
    const e = f32x4.extract_lane(exp4(f32x4.splat(load<f32>(x + (<usize>d << 2)) - m)), 0);
    if (!logOut) store<f32>(y + (<usize>d << 2), e);
    tail += <f64>e;
  }
  const sum = f64x2.extract_lane(s0, 0) + f64x2.extract_lane(s0, 1) + f64x2.extract_lane(s1, 0) + f64x2.extract_lane(s1, 1) + tail;
  if (logOut) {
    const shift = f32x4.splat(<f32>(<f64>m + Math.log(sum)));
    d = 0;
    for (; d + 4 <= dim; d += 4) v128.store(y + (<usize>d << 2), f32x4.sub(v128.load(x + (<usize>d << 2)), shift));
    for (; d < dim; d++) store<f32>(y + (<usize>d << 2), load<f32>(x + (<usize>d << 2)) - f32x4.extract_lane(shift, 0));
    return;
  }
  const inv = f32x4.splat(<f32>(1 / sum));
  d = 0;
  for (; d + 4 <= dim; d += 4) v128.store(y + (<usize>d << 2), f32x4.mul(v128.load(y + (<usize>d << 2)), inv));
  for (; d < dim; d++) store<f32>(y + (<usize>d << 2), load<f32>(y + (<usize>d << 2)) * f32x4.extract_lane(inv, 0));
}

/** Four neighbouring columns (stride between the `dim` values of a column). */
function softmaxColumns4(x: usize, y: usize, dim: i32, stride: usize, logOut: bool): void {
  let m = f32x4.splat(-Infinity);
  for (let d = 0; d < dim; d++) m = f32x4.max(m, v128.load(x + <usize>d * stride));
  let s0 = f64x2.splat(0), s1 = f64x2.splat(0);
  for (let d = 0; d < dim; d++) {
    const e = exp4(f32x4.sub(v128.load(x + <usize>d * stride), m));
    if (!logOut) v128.store(y + <usize>d * stride, e);
    s0 = f64x2.add(s0, f64x2.promote_low_f32x4(e));
    s1 = f64x2.add(s1, f64x2.promote_low_f32x4(i32x4.shuffle(e, e, 2, 3, 0, 1)));
  }
  if (logOut) {
    const l = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(<f32>Math.log(f64x2.extract_lane(s0, 0))),
      1, <f32>Math.log(f64x2.extract_lane(s0, 1))), 2, <f32>Math.log(f64x2.extract_lane(s1, 0))), 3, <f32>Math.log(f64x2.extract_lane(s1, 1)));
    const shift = f32x4.add(m, l);
    for (let d = 0; d < dim; d++) v128.store(y + <usize>d * stride, f32x4.sub(v128.load(x + <usize>d * stride), shift));
    return;
  }
  const inv = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(<f32>(1 / f64x2.extract_lane(s0, 0))),
    1, <f32>(1 / f64x2.extract_lane(s0, 1))), 2, <f32>(1 / f64x2.extract_lane(s1, 0))), 3, <f32>(1 / f64x2.extract_lane(s1, 1)));
  for (let d = 0; d < dim; d++) v128.store(y + <usize>d * stride, f32x4.mul(v128.load(y + <usize>d * stride), inv));
}

/** One column. */
function softmaxColumn1(x: usize, y: usize, dim: i32, stride: usize, logOut: bool): void {
  let m: f32 = -Infinity;
  for (let d = 0; d < dim; d++) m = max(m, load<f32>(x + <usize>d * stride));
  let sum: f64 = 0;
  for (let d = 0; d < dim; d++) {
    const e = f32x4.extract_lane(exp4(f32x4.splat(load<f32>(x + <usize>d * stride) - m)), 0);
    if (!logOut) store<f32>(y + <usize>d * stride, e);
    sum += <f64>e;
  }
  const k: f32 = logOut ? <f32>(<f64>m + Math.log(sum)) : <f32>(1 / sum);
  for (let d = 0; d < dim; d++) {
    const p = y + <usize>d * stride;
    store<f32>(p, logOut ? load<f32>(x + <usize>d * stride) - k : load<f32>(p) * k);
  }
}

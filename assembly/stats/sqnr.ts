// Float-vs-fixed error terms of a tensor for its SQNR: sum f^2 and sum (f - q * step)^2, with f
// the float model's f32 values and q the fixed-point engine's integers of type t. Summed in f64
// in four lanes (element i goes to lane i % 4) plus the tail in order, then combined as
// ((l0 + l1) + (l2 + l3)) + tail: sqnrSumsRef in sdk/quant/histogram.ts does the same, bit for bit.
import { S16, S8, U8, loadQ } from '../int/q';

/** 4 integers of type t at element i, as i32x4. */
@inline function load4(q: usize, i: i32, t: i32): v128 {
  if (t == U8) return i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(q + <usize>i)));
  if (t == S8) return i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v128.load32_zero(q + <usize>i)));
  if (t == S16) return i32x4.extend_low_i16x8_s(v128.load64_zero(q + (<usize>i << 1)));
  return i32x4.extend_low_i16x8_u(v128.load64_zero(q + (<usize>i << 1)));
}

/** out[0] = sum f^2, out[1] = sum (f - q * step)^2 over n elements. */
export function sqnr_sums_f32_q(f: usize, q: usize, t: i32, n: i32, step: f64, out: usize): void {
  const vstep = f64x2.splat(step);
  let s01 = f64x2.splat(0), s23 = f64x2.splat(0), e01 = f64x2.splat(0), e23 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const x = v128.load(f + (<usize>i << 2));
    const x01 = f64x2.promote_low_f32x4(x);
    const x23 = f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 0, 1));
    const qi = load4(q, i, t);
    const d01 = f64x2.sub(x01, f64x2.mul(f64x2.convert_low_i32x4_s(qi), vstep));
    const d23 = f64x2.sub(x23, f64x2.mul(f64x2.convert_low_i32x4_s(i32x4.shuffle(qi, qi, 2, 3, 0, 1)), vstep));
    s01 = f64x2.add(s01, f64x2.mul(x01, x01));
    s23 = f64x2.add(s23, f64x2.mul(x23, x23));
    e01 = f64x2.add(e01, f64x2.mul(d01, d01));
    e23 = f64x2.add(e23, f64x2.mul(d23, d23));
  }
  let ts: f64 = 0, te: f64 = 0;
  for (; i < n; i++) {
    const x = <f64>load<f32>(f + (<usize>i << 2));
    const d = x - <f64>loadQ(q, i, t) * step;
    ts += x * x;
    te += d * d;
  }
  store<f64>(out, ((f64x2.extract_lane(s01, 0) + f64x2.extract_lane(s01, 1)) + (f64x2.extract_lane(s23, 0) + f64x2.extract_lane(s23, 1))) + ts);
  store<f64>(out, ((f64x2.extract_lane(e01, 0) + f64x2.extract_lane(e01, 1)) + (f64x2.extract_lane(e23, 0) + f64x2.extract_lane(e23, 1))) + te, 8);
}

/** The f32 nearest to v on the side `up` (true: the smallest f32 >= v, false: the largest <= v). */
@inline function f32Toward(v: f64, up: bool): f32 {
  const f = <f32>v;
  if (up ? <f64>f >= v : <f64>f <= v) return f;
  // One step further, to the next f32 upward (downward) from f. A step is needed only away from
  // the zero of v's own sign (f = +0 for a tiny v > 0 going up, -0 for a tiny v < 0 going down).
  const b = reinterpret<i32>(f);
  if (up) return reinterpret<f32>(f >= 0 ? b + 1 : b - 1);
  return reinterpret<f32>(f > 0 ? b - 1 : f == 0 ? <i32>0x80000001 : b + 1);
}

// clip_error_f32's running count and sum (the stub runtime never frees: no arrays per call).
let clipCount: f64 = 0, clipSum: f64 = 0;

/** The clip's cost of x[i] for i in [from, to), added in order (the reference's loop). */
@inline function clipScalar(f: usize, from: i32, to: i32, lo: f64, hi: f64): void {
  for (let i = from; i < to; i++) {
    const x = <f64>load<f32>(f + (<usize>i << 2));
    const d = x < lo ? x - lo : x > hi ? x - hi : 0;
    if (d != 0) {
      clipCount += 1;
      clipSum += d * d;
    }
  }
}

/**
 * What a clip [lo, hi] cuts of n f32 values: out[0] = how many lie outside it, out[1] = the sum of
 * (f - clamp(f, lo, hi))^2 in f64, in order (clipErrorRef in sdk/quant/histogram.ts). Almost every
 * value is inside: blocks of 16 whose values all are (vector compares against the f32 bounds that
 * are exactly as strict as the f64 ones: x >= lo iff x >= the smallest f32 >= lo) add nothing and
 * are skipped; the others run the reference's loop.
 */
export function clip_error_f32(f: usize, n: i32, lo: f64, hi: f64, out: usize): void {
  clipCount = 0;
  clipSum = 0;
  const vlo = f32x4.splat(f32Toward(lo, true)), vhi = f32x4.splat(f32Toward(hi, false));
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const p = f + (<usize>i << 2);
    const a = v128.load(p), b = v128.load(p, 16), c = v128.load(p, 32), d = v128.load(p, 48);
    const inside = v128.and(
      v128.and(v128.and(f32x4.ge(a, vlo), f32x4.le(a, vhi)), v128.and(f32x4.ge(b, vlo), f32x4.le(b, vhi))),
      v128.and(v128.and(f32x4.ge(c, vlo), f32x4.le(c, vhi)), v128.and(f32x4.ge(d, vlo), f32x4.le(d, vhi))),
    );
    if (!i32x4.all_true(inside)) clipScalar(f, i, i + 16, lo, hi);
  }
  clipScalar(f, i, n, lo, hi);
  store<f64>(out, clipCount);
  store<f64>(out, clipSum, 8);
}

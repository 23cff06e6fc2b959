// Float to fixed for the model inputs, q = sat(round_half_away(x * 2^s)), equal to the
// TypeScript reference for every f32 input; and per-channel sums of integer tensors.
import { S8, U16, U8, storeQ } from './q';

export function quantize_f32_q(x: usize, len: i32, scale: f64, lo: i32, hi: i32, y: usize, yt: i32): void {
  let i = 0;
  if (yt <= S8) {
    // Round half away from zero in f32, exactly: nearest (half to even) except at exact ties,
    // which go to trunc(v) +/- 1.
    const vs = f32x4.splat(<f32>scale);
    const vlo = f32x4.splat(<f32>lo), vhi = f32x4.splat(<f32>hi);
    for (; i + 8 <= len; i += 8) {
      const a = roundAway4(f32x4.mul(v128.load(x + (<usize>i << 2)), vs), vlo, vhi);
      const b = roundAway4(f32x4.mul(v128.load(x + (<usize>i << 2), 16), vs), vlo, vhi);
      const h = i16x8.narrow_i32x4_s(a, b);
      v128.store64_lane(y + <usize>i, yt == S8 ? i8x16.narrow_i16x8_s(h, h) : i8x16.narrow_i16x8_u(h, h), 0);
    }
  }
  for (; i < len; i++) {
    const v = <f64>load<f32>(x + (<usize>i << 2)) * scale;
    let r = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
    r = r < <f64>lo ? <f64>lo : r > <f64>hi ? <f64>hi : r;
    if (r != r) r = 0; // NaN stores as 0, as a JS typed array does
    storeQ(y, i, yt, <i32>r);
  }
}

/** x * 2^s is exact in f32 (a power of 2), so this equals the f64 reference; NaN gives 0. */
@inline function roundAway4(v: v128, lo: v128, hi: v128): v128 {
  const t = f32x4.trunc(v);
  const tie = f32x4.eq(f32x4.abs(f32x4.sub(v, t)), f32x4.splat(0.5));
  const away = f32x4.add(t, v128.or(v128.and(v, i32x4.splat(0x80000000)), f32x4.splat(1)));
  const r = v128.bitselect(away, f32x4.nearest(v), tie);
  return i32x4.trunc_sat_f32x4_s(f32x4.min(f32x4.max(r, lo), hi));
}

/** Per-channel sums (f64, added to `out`) of an integer [outer][c][inner] tensor of type t. */
export function channel_sums_q(x: usize, t: i32, outer: i32, c: i32, inner: i32, out: usize): void {
  if (t == U8) channelSums<u8>(x, outer, c, inner, out);
  else if (t == S8) channelSums<i8>(x, outer, c, inner, out);
  else if (t == U16) channelSums<u16>(x, outer, c, inner, out);
  else channelSums<i16>(x, outer, c, inner, out);
}

@inline function channelSums<T>(x: usize, outer: i32, c: i32, inner: i32, out: usize): void {
  let p = x;
  for (let o = 0; o < outer; o++) {
    for (let ch = 0; ch < c; ch++) {
      const q = out + (<usize>ch << 3);
      store<f64>(q, load<f64>(q) + <f64>planeSum<T>(p, inner));
      p += <usize>inner * sizeof<T>();
    }
  }
}

/**
 * The exact sum of n integers: pairwise widening adds into i32 lanes, flushed to i64 before a
 * lane could overflow (8-bit: at most 4 * 255 per vector and lane, 16-bit: 2 * 65535).
 */
@inline function planeSum<T>(p: usize, n: i32): i64 {
  const size = <i32>sizeof<T>();
  const step = 16 / size;
  const flushEvery = size == 1 ? 1 << 20 : 1 << 12;
  let total: i64 = 0;
  let j = 0;
  while (n - j >= step) {
    let acc = i32x4.splat(0);
    for (let v = 0; v < flushEvery && n - j >= step; v++, j += step) acc = i32x4.add(acc, widenPairs<T>(v128.load(p + <usize>(j * size))));
    total += <i64>i32x4.extract_lane(acc, 0) + <i64>i32x4.extract_lane(acc, 1) + <i64>i32x4.extract_lane(acc, 2) + <i64>i32x4.extract_lane(acc, 3);
  }
  for (; j < n; j++) total += <i64>load<T>(p + <usize>(j * size));
  return total;
}

/** Neighbouring elements of a vector added pairwise, down to four i32 lanes. */
@inline function widenPairs<T>(v: v128): v128 {
  if (isSigned<T>()) {
    return sizeof<T>() == 1 ? i32x4.extadd_pairwise_i16x8_s(i16x8.extadd_pairwise_i8x16_s(v)) : i32x4.extadd_pairwise_i16x8_s(v);
  }
  return sizeof<T>() == 1 ? i32x4.extadd_pairwise_i16x8_u(i16x8.extadd_pairwise_i8x16_u(v)) : i32x4.extadd_pairwise_i16x8_u(v);
}

/** Fixed to float for the float fallbacks: y = x * 2^-s in f32, exact (an integer of at most 16
 *  bits times a power of 2), as the TypeScript reference's dequantizeValue. */
export function dequantize_q_f32(x: usize, t: i32, len: i32, scale: f32, y: usize): void {
  if (t == U8) dequantize<u8>(x, len, scale, y);
  else if (t == S8) dequantize<i8>(x, len, scale, y);
  else if (t == U16) dequantize<u16>(x, len, scale, y);
  else dequantize<i16>(x, len, scale, y);
}

@inline function dequantize<T>(x: usize, len: i32, scale: f32, y: usize): void {
  const s = f32x4.splat(scale);
  const size = <usize>sizeof<T>();
  let i = 0;
  for (; i + 8 <= len; i += 8) {
    let h: v128;
    if (size == 1) {
      const v = v128.load64_zero(x + <usize>i);
      h = isSigned<T>() ? i16x8.extend_low_i8x16_s(v) : i16x8.extend_low_i8x16_u(v);
    } else {
      h = v128.load(x + (<usize>i << 1));
    }
    const lo = isSigned<T>() ? i32x4.extend_low_i16x8_s(h) : i32x4.extend_low_i16x8_u(h);
    const hi = isSigned<T>() ? i32x4.extend_high_i16x8_s(h) : i32x4.extend_high_i16x8_u(h);
    v128.store(y + (<usize>i << 2), f32x4.mul(f32x4.convert_i32x4_s(lo), s));
    v128.store(y + (<usize>i << 2), f32x4.mul(f32x4.convert_i32x4_s(hi), s), 16);
  }
  for (; i < len; i++) store<f32>(y + (<usize>i << 2), <f32>load<T>(x + <usize>i * size) * scale);
}

// Shared inline pieces of the integer kernels: element types and the device's requantization
// (add the rounding term, arithmetic shift right, saturate). Not exported from the module.

import { QCODE_INT16, QCODE_INT8, QCODE_UINT16, QCODE_UINT8 } from '../shared';

/** Element type codes (assembly/shared.json, TypeScript's QCODE): uint8, int8, uint16, int16. */
export const U8: i32 = QCODE_UINT8;
export const S8: i32 = QCODE_INT8;
export const U16: i32 = QCODE_UINT16;
export const S16: i32 = QCODE_INT16;

@inline export function loadQ(p: usize, i: i32, t: i32): i32 {
  if (t == U8) return <i32>load<u8>(p + <usize>i);
  if (t == S8) return <i32>load<i8>(p + <usize>i);
  if (t == U16) return <i32>load<u16>(p + (<usize>i << 1));
  return <i32>load<i16>(p + (<usize>i << 1));
}

@inline export function storeQ(p: usize, i: i32, t: i32, v: i32): void {
  if (t <= S8) store<u8>(p + <usize>i, <u8>v);
  else store<u16>(p + (<usize>i << 1), <u16>v);
}

/** (acc + 2^(n-1)) >> n, n >= 0, in int64 (16-bit layers). */
@inline export function roundShift64(acc: i64, n: i32): i64 {
  return n > 0 ? (acc + (<i64>1 << <i64>(n - 1))) >> <i64>n : acc;
}

@inline export function clamp32(v: i32, lo: i32, hi: i32): i32 {
  return v < lo ? lo : v > hi ? hi : v;
}

/** 8 widened 8-bit values (u8 or i8 by T) as i16x8. */
@inline export function load8x8<T>(p: usize): v128 {
  return isSigned<T>() ? v128.load8x8_s(p) : v128.load8x8_u(p);
}

/** Bytes 0, 2, ..., 14 of 16 loaded at p, widened to i16x8 (stride-2 taps). */
@inline export function evens<T>(p: usize): v128 {
  const v = v128.load(p);
  const e = i8x16.shuffle(v, v, 0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
  return isSigned<T>() ? i16x8.extend_low_i8x16_s(e) : i16x8.extend_low_i8x16_u(e);
}

/**
 * Requantize 8 int32 accumulators (two vectors) that already hold the bias and the rounding term
 * 2^(n-1): shift right arithmetically by n (0..31), clamp to [lo, hi], narrow to 8-bit (the
 * result's low 8 bytes). The narrowing saturates to the type's range by itself, so the clamp
 * runs only when [lo, hi] is narrower (a fused Clip): see clamps().
 */
@inline export function requant8x8(a0: v128, a1: v128, n: i32, lo: v128, hi: v128, signedOut: bool, clamp: bool): v128 {
  let v0 = i32x4.shr_s(a0, n), v1 = i32x4.shr_s(a1, n);
  if (clamp) {
    v0 = i32x4.min_s(i32x4.max_s(v0, lo), hi);
    v1 = i32x4.min_s(i32x4.max_s(v1, lo), hi);
  }
  const h = i16x8.narrow_i32x4_s(v0, v1);
  return signedOut ? i8x16.narrow_i16x8_s(h, h) : i8x16.narrow_i16x8_u(h, h);
}

/** Whether [lo, hi] is narrower than the 8-bit type's range (the saturation alone is not enough). */
@inline export function clamps(lo: i32, hi: i32, signedOut: bool): bool {
  return signedOut ? lo > -128 || hi < 127 : lo > 0 || hi < 255;
}

/** The rounding term of a right shift by n: 2^(n-1), or 0 for n = 0. */
@inline export function roundTerm(n: i32): i32 {
  return n > 0 ? 1 << (n - 1) : 0;
}

/** Store the low `count` (<= 8) bytes of v. */
@inline export function storeBytes(p: usize, v: v128, count: i32): void {
  if (count >= 8) {
    v128.store64_lane(p, v, 0);
    return;
  }
  let bits = i64x2.extract_lane(v, 0);
  if (count & 4) {
    store<u32>(p, <u32>bits);
    bits >>= 32;
    p += 4;
  }
  if (count & 2) {
    store<u16>(p, <u16>bits);
    bits >>= 16;
    p += 2;
  }
  if (count & 1) store<u8>(p, <u8>bits);
}

/** Sum of the first `count` of 8 int32 lanes (a0 then a1), in int64. */
@inline export function sumLanes(a0: v128, a1: v128, count: i32): i64 {
  const c = i32x4.splat(count);
  const m0 = v128.and(a0, i32x4.lt_s(i32x4(0, 1, 2, 3), c));
  const m1 = v128.and(a1, i32x4.lt_s(i32x4(4, 5, 6, 7), c));
  const s = i64x2.add(
    i64x2.add(i64x2.extend_low_i32x4_s(m0), i64x2.extend_high_i32x4_s(m0)),
    i64x2.add(i64x2.extend_low_i32x4_s(m1), i64x2.extend_high_i32x4_s(m1)),
  );
  return i64x2.extract_lane(s, 0) + i64x2.extract_lane(s, 1);
}

/**
 * The epilogue of one output channel over 8 pixels whose accumulators started at bias + 2^(n-1):
 * requantize and store `count` of them; when `sums` is set, add the accumulators with the bias
 * (before the shift, without the rounding term) to sums[ch] (f64).
 */
@inline export function finish8(a0: v128, a1: v128, n: i32, lo: i32, hi: i32, clamp: bool, out: usize, count: i32, signedOut: bool, sums: usize, ch: i32): void {
  storeBytes(out, requant8x8(a0, a1, n, i32x4.splat(lo), i32x4.splat(hi), signedOut, clamp), count);
  if (sums) {
    const p = sums + (<usize>ch << 3);
    store<f64>(p, load<f64>(p) + <f64>(sumLanes(a0, a1, count) - <i64>roundTerm(n) * <i64>count));
  }
}

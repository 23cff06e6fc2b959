// Element-wise integer ops on same-shape tensors: y = sat((ka*a + kb*b + 2^(n-1)) >> n) for Add
// (kb > 0), Sub (kb < 0) and, with one input (b = 0), the rescale that requantizes a tensor
// between formats (concat inputs, activations); y = sat((a*b + 2^(n-1)) >> n) for Mul.
// 8-bit: int32 SIMD; 16-bit: int64 scalar.
import { clamps, load8x8, loadQ, requant8x8, roundShift64, roundTerm, storeBytes, storeQ } from './q';

/** All operands 8-bit; int32 accumulator. b = 0: one input. */
export function eltwise_q8_simd(
  a: usize, aSigned: bool, ka: i32, b: usize, bSigned: bool, kb: i32, len: i32, n: i32, lo: i32, hi: i32,
  y: usize, ySigned: bool,
): void {
  const vka = i32x4.splat(ka), vkb = i32x4.splat(kb);
  const rnd = i32x4.splat(roundTerm(n));
  const vlo = i32x4.splat(lo), vhi = i32x4.splat(hi);
  const clamp = clamps(lo, hi, ySigned);
  for (let i = 0; i < len; i += 8) {
    const va = aSigned ? load8x8<i8>(a + <usize>i) : load8x8<u8>(a + <usize>i);
    let s0 = i32x4.add(rnd, i32x4.mul(i32x4.extend_low_i16x8_s(va), vka));
    let s1 = i32x4.add(rnd, i32x4.mul(i32x4.extend_high_i16x8_s(va), vka));
    if (b) {
      const vb = bSigned ? load8x8<i8>(b + <usize>i) : load8x8<u8>(b + <usize>i);
      s0 = i32x4.add(s0, i32x4.mul(i32x4.extend_low_i16x8_s(vb), vkb));
      s1 = i32x4.add(s1, i32x4.mul(i32x4.extend_high_i16x8_s(vb), vkb));
    }
    storeBytes(y + <usize>i, requant8x8(s0, s1, n, vlo, vhi, ySigned, clamp), min(8, len - i));
  }
}

/** Any operand types (codes of q.ts); int64 accumulator. b = 0: one input. */
export function eltwise_q16_scalar(
  a: usize, at: i32, ka: i32, b: usize, bt: i32, kb: i32, len: i32, n: i32, lo: i32, hi: i32, y: usize, yt: i32,
): void {
  for (let i = 0; i < len; i++) {
    let acc = <i64>loadQ(a, i, at) * <i64>ka;
    if (b) acc += <i64>loadQ(b, i, bt) * <i64>kb;
    const v = roundShift64(acc, n);
    storeQ(y, i, yt, <i32>(v < <i64>lo ? <i64>lo : v > <i64>hi ? <i64>hi : v));
  }
}

/** y = sat((a*b + 2^(n-1)) >> n), all operands 8-bit (products fit int32). */
export function mul_q8_simd(a: usize, aSigned: bool, b: usize, bSigned: bool, len: i32, n: i32, lo: i32, hi: i32, y: usize, ySigned: bool): void {
  const rnd = i32x4.splat(roundTerm(n));
  const vlo = i32x4.splat(lo), vhi = i32x4.splat(hi);
  const clamp = clamps(lo, hi, ySigned);
  for (let i = 0; i < len; i += 8) {
    const va = aSigned ? load8x8<i8>(a + <usize>i) : load8x8<u8>(a + <usize>i);
    const vb = bSigned ? load8x8<i8>(b + <usize>i) : load8x8<u8>(b + <usize>i);
    const p0 = i32x4.add(rnd, i32x4.extmul_low_i16x8_s(va, vb));
    const p1 = i32x4.add(rnd, i32x4.extmul_high_i16x8_s(va, vb));
    storeBytes(y + <usize>i, requant8x8(p0, p1, n, vlo, vhi, ySigned, clamp), min(8, len - i));
  }
}

/** The same for any operand types (codes of q.ts), int64 products. */
export function mul_q16_scalar(a: usize, at: i32, b: usize, bt: i32, len: i32, n: i32, lo: i32, hi: i32, y: usize, yt: i32): void {
  for (let i = 0; i < len; i++) {
    const v = roundShift64(<i64>loadQ(a, i, at) * <i64>loadQ(b, i, bt), n);
    storeQ(y, i, yt, <i32>(v < <i64>lo ? <i64>lo : v > <i64>hi ? <i64>hi : v));
  }
}

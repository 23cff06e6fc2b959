// Element-wise integer ops on same-shape tensors: y = sat((ka*a + kb*b + 2^(n-1)) >> n) for Add
// (kb > 0), Sub (kb < 0) and, with one input (b = 0), the rescale that requantizes a tensor
// between formats (concat inputs, activations); y = sat((a*b + 2^(n-1)) >> n) for Mul.
// 8-bit: int32 SIMD; 16-bit: int64 scalar.
import { clamps, load8x8, requant8x8, roundShift64, roundTerm, S8, storeBytes, storeQ, U16, U8 } from './q';

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
  // Types fixed per instance (a type test per element costs more than the arithmetic); one input: b's type is moot.
  if (!b) bt = at;
  if (at == U8) eltwiseA<u8>(a, ka, b, bt, kb, len, n, lo, hi, y, yt);
  else if (at == S8) eltwiseA<i8>(a, ka, b, bt, kb, len, n, lo, hi, y, yt);
  else if (at == U16) eltwiseA<u16>(a, ka, b, bt, kb, len, n, lo, hi, y, yt);
  else eltwiseA<i16>(a, ka, b, bt, kb, len, n, lo, hi, y, yt);
}

@inline function eltwiseA<A>(a: usize, ka: i32, b: usize, bt: i32, kb: i32, len: i32, n: i32, lo: i32, hi: i32, y: usize, yt: i32): void {
  if (bt == U8) eltwiseQ16<A, u8>(a, ka, b, kb, len, n, lo, hi, y, yt);
  else if (bt == S8) eltwiseQ16<A, i8>(a, ka, b, kb, len, n, lo, hi, y, yt);
  else if (bt == U16) eltwiseQ16<A, u16>(a, ka, b, kb, len, n, lo, hi, y, yt);
  else eltwiseQ16<A, i16>(a, ka, b, kb, len, n, lo, hi, y, yt);
}

function eltwiseQ16<A, B>(a: usize, ka: i32, b: usize, kb: i32, len: i32, n: i32, lo: i32, hi: i32, y: usize, yt: i32): void {
  for (let i = 0; i < len; i++) {
    let acc = <i64>load<A>(a + (<usize>i << alignof<A>())) * <i64>ka;
    if (b) acc += <i64>load<B>(b + (<usize>i << alignof<B>())) * <i64>kb;
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
  if (at == U8) mulA<u8>(a, b, bt, len, n, lo, hi, y, yt);
  else if (at == S8) mulA<i8>(a, b, bt, len, n, lo, hi, y, yt);
  else if (at == U16) mulA<u16>(a, b, bt, len, n, lo, hi, y, yt);
  else mulA<i16>(a, b, bt, len, n, lo, hi, y, yt);
}

@inline function mulA<A>(a: usize, b: usize, bt: i32, len: i32, n: i32, lo: i32, hi: i32, y: usize, yt: i32): void {
  if (bt == U8) mulQ16<A, u8>(a, b, len, n, lo, hi, y, yt);
  else if (bt == S8) mulQ16<A, i8>(a, b, len, n, lo, hi, y, yt);
  else if (bt == U16) mulQ16<A, u16>(a, b, len, n, lo, hi, y, yt);
  else mulQ16<A, i16>(a, b, len, n, lo, hi, y, yt);
}

function mulQ16<A, B>(a: usize, b: usize, len: i32, n: i32, lo: i32, hi: i32, y: usize, yt: i32): void {
  for (let i = 0; i < len; i++) {
    const v = roundShift64(<i64>load<A>(a + (<usize>i << alignof<A>())) * <i64>load<B>(b + (<usize>i << alignof<B>())), n);
    storeQ(y, i, yt, <i32>(v < <i64>lo ? <i64>lo : v > <i64>hi ? <i64>hi : v));
  }
}

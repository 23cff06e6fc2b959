// 8-bit fully connected layer (Gemm / MatMul with constant weights): one input row against
// every output feature, as i16 dot products along K (i32x4.dot_i16x8_s), 4 features at a time.
import { clamp32, roundTerm } from './q';

/**
 * a: [rows][k] 8-bit; wt: [ceil(n/4)*4][kp] i8 (kp = k rounded up to 8, zero padded), widened
 * as it is loaded (half the memory traffic of i16 weights, at no extra instruction);
 * y[r * n + j] = clamp((acc + bias[j] + 2^(s-1)) >> s, lo, hi), s = shift[j].
 * arow: scratch of kp i16 for the widened input row. sums: optional per-feature f64 sums of
 * the accumulators (bias included, before the shift).
 */
export function fc_q8_dot_simd(
  a: usize, signedIn: bool, rows: i32, k: i32, wt: usize, n: i32, bias: usize, shift: usize, lo: i32, hi: i32,
  y: usize, signedOut: bool, sums: usize, arow: usize,
): void {
  const kp = (k + 7) & ~7;
  for (let r = 0; r < rows; r++) {
    const src = a + <usize>r * <usize>k;
    for (let t = 0; t < kp; t += 8) {
      // Columns past k meet zero weights, so whatever they hold adds nothing.
      v128.store(arow + (<usize>t << 1), signedIn ? v128.load8x8_s(src + <usize>t) : v128.load8x8_u(src + <usize>t));
    }
    for (let j = 0; j < n; j += 4) {
      const w0 = wt + <usize>j * <usize>kp;
      const w1 = w0 + <usize>kp, w2 = w1 + <usize>kp, w3 = w2 + <usize>kp;
      let s0 = i32x4.splat(0), s1 = i32x4.splat(0), s2 = i32x4.splat(0), s3 = i32x4.splat(0);
      for (let t: usize = 0; t < <usize>kp; t += 8) {
        const x = v128.load(arow + (t << 1));
        s0 = i32x4.add(s0, i32x4.dot_i16x8_s(x, v128.load8x8_s(w0 + t)));
        s1 = i32x4.add(s1, i32x4.dot_i16x8_s(x, v128.load8x8_s(w1 + t)));
        s2 = i32x4.add(s2, i32x4.dot_i16x8_s(x, v128.load8x8_s(w2 + t)));
        s3 = i32x4.add(s3, i32x4.dot_i16x8_s(x, v128.load8x8_s(w3 + t)));
      }
      const out = y + <usize>r * <usize>n;
      finish1(s0, j, n, bias, shift, lo, hi, out, signedOut, sums);
      finish1(s1, j + 1, n, bias, shift, lo, hi, out, signedOut, sums);
      finish1(s2, j + 2, n, bias, shift, lo, hi, out, signedOut, sums);
      finish1(s3, j + 3, n, bias, shift, lo, hi, out, signedOut, sums);
    }
  }
}

@inline function finish1(s: v128, j: i32, n: i32, bias: usize, shift: usize, lo: i32, hi: i32, out: usize, signedOut: bool, sums: usize): void {
  if (j >= n) return;
  const acc = i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3) + load<i32>(bias + (<usize>j << 2));
  const sh = load<i32>(shift + (<usize>j << 2));
  const v = clamp32((acc + roundTerm(sh)) >> sh, lo, hi);
  if (signedOut) store<i8>(out + <usize>j, <i8>v);
  else store<u8>(out + <usize>j, <u8>v);
  if (sums) {
    const p = sums + (<usize>j << 3);
    store<f64>(p, load<f64>(p) + <f64>acc);
  }
}

// Element-wise binary ops with broadcasting. The caller collapses the broadcast to at most four
// output dims (n0..n3) with per-input element strides; along the innermost dim each input is
// either contiguous (stride 1) or broadcast (stride 0), which gives the same-shape, scalar and
// per-channel loops below. Op codes: assembly/shared.json (TypeScript's OP).
import { activate, activate1 } from './activation';
import {
  LOOPS_A0, LOOPS_A1, LOOPS_A2, LOOPS_A3, LOOPS_B0, LOOPS_B1, LOOPS_B2, LOOPS_B3, LOOPS_N0, LOOPS_N1, LOOPS_N2, LOOPS_N3,
  OP_ADD, OP_DIV, OP_MAX, OP_MIN, OP_MUL, OP_PRELU, OP_SUB,
} from '../shared';

@inline
function apply4(op: i32, a: v128, b: v128): v128 {
  switch (op) {
    case OP_ADD: return f32x4.add(a, b);
    case OP_SUB: return f32x4.sub(a, b);
    case OP_MUL: return f32x4.mul(a, b);
    case OP_DIV: return f32x4.div(a, b);
    // pmax/pmin are the reference's (a >= b ? a : b) on numbers, and single instructions on x86.
    case OP_MAX: return f32x4.pmax(b, a);
    case OP_MIN: return f32x4.pmin(b, a);
    default: return v128.bitselect(f32x4.mul(a, b), a, f32x4.lt(a, f32x4.splat(0)));
  }
}

@inline
function apply1(op: i32, a: f32, b: f32): f32 {
  return f32x4.extract_lane(apply4(op, f32x4.splat(a), f32x4.splat(b)), 0);
}

/** One innermost run of n outputs; sa/sb are 0 (broadcast) or 1 (contiguous). `op` is a
 *  constant at every call site (see binary_f32_simd). */
@inline
function run(op: i32, a: usize, sa: i32, b: usize, sb: i32, y: usize, n: i32, act: i32, p0: f32, p1: f32): void {
  let i = 0;
  if (sa == 1 && sb == 1) {
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(y + o, activate(apply4(op, v128.load(a + o), v128.load(b + o)), act, p0, p1));
    }
  } else if (sa == 1) {
    const bv = v128.load32_splat(b);
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(y + o, activate(apply4(op, v128.load(a + o), bv), act, p0, p1));
    }
  } else if (sb == 1) {
    const av = v128.load32_splat(a);
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(y + o, activate(apply4(op, av, v128.load(b + o)), act, p0, p1));
    }
  }
  for (; i < n; i++) {
    store<f32>(y + (<usize>i << 2), activate1(apply1(op, load<f32>(a + (<usize>(i * sa) << 2)), load<f32>(b + (<usize>(i * sb) << 2))), act, p0, p1));
  }
}

/** y = a op b broadcast over the four loops of `loops` (a LOOPS block, assembly/shared.json). */
export function binary_f32_simd(op: i32, a: usize, b: usize, y: usize, loops: usize, act: i32, p0: f32, p1: f32): void {
  const n0 = load<i32>(loops, LOOPS_N0), n1 = load<i32>(loops, LOOPS_N1), n2 = load<i32>(loops, LOOPS_N2);
  const n3 = load<i32>(loops, LOOPS_N3), sa0 = load<i32>(loops, LOOPS_A0), sa1 = load<i32>(loops, LOOPS_A1);
  const sa2 = load<i32>(loops, LOOPS_A2), sa3 = load<i32>(loops, LOOPS_A3), sb0 = load<i32>(loops, LOOPS_B0);
  const sb1 = load<i32>(loops, LOOPS_B1), sb2 = load<i32>(loops, LOOPS_B2), sb3 = load<i32>(loops, LOOPS_B3);
  for (let i0 = 0; i0 < n0; i0++) {
    for (let i1 = 0; i1 < n1; i1++) {
      for (let i2 = 0; i2 < n2; i2++) {
        const ia = i0 * sa0 + i1 * sa1 + i2 * sa2;
        const ib = i0 * sb0 + i1 * sb1 + i2 * sb2;
        const pa = a + (<usize>ia << 2), pb = b + (<usize>ib << 2);
        switch (op) {
          case OP_ADD: run(OP_ADD, pa, sa3, pb, sb3, y, n3, act, p0, p1); break;
          case OP_SUB: run(OP_SUB, pa, sa3, pb, sb3, y, n3, act, p0, p1); break;
          case OP_MUL: run(OP_MUL, pa, sa3, pb, sb3, y, n3, act, p0, p1); break;
          case OP_DIV: run(OP_DIV, pa, sa3, pb, sb3, y, n3, act, p0, p1); break;
          case OP_MAX: run(OP_MAX, pa, sa3, pb, sb3, y, n3, act, p0, p1); break;
          case OP_MIN: run(OP_MIN, pa, sa3, pb, sb3, y, n3, act, p0, p1); break;
          default: run(OP_PRELU, pa, sa3, pb, sb3, y, n3, act, p0, p1);
        }
        y += <usize>n3 << 2;
      }
    }
  }
}

/** y = x * s[c] + t[c] over an [outer][c][inner] tensor: an inference BatchNormalization that
 *  could not be folded. */
export function scale_shift_f32_channels(x: usize, y: usize, outer: i32, c: i32, inner: i32, s: usize, t: usize): void {
  for (let o = 0; o < outer; o++) {
    for (let ch = 0; ch < c; ch++) {
      const sv = v128.load32_splat(s + (<usize>ch << 2)), tv = v128.load32_splat(t + (<usize>ch << 2));
      const sc = f32x4.extract_lane(sv, 0), tc = f32x4.extract_lane(tv, 0);
      let i = 0;
      for (; i + 4 <= inner; i += 4) v128.store(y + (<usize>i << 2), f32x4.add(f32x4.mul(v128.load(x + (<usize>i << 2)), sv), tv));
      for (; i < inner; i++) store<f32>(y + (<usize>i << 2), load<f32>(x + (<usize>i << 2)) * sc + tc);
      x += <usize>inner << 2;
      y += <usize>inner << 2;
    }
  }
}

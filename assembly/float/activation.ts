// Activations applied element-wise, either fused into the store of a conv/gemm tile or as a kernel
// of their own. The codes (assembly/shared.json) are TypeScript's ACT: CLAMP is Relu (0, +inf) and
// Clip (p0 = lo, p1 = hi), LEAKY takes p0 = alpha, HARDSIGMOID p0 = alpha and p1 = beta,
// SILU is x * sigmoid(x) (a Sigmoid and a Mul fused, the same operations).
import { ACT_CLAMP, ACT_HARDSIGMOID, ACT_HARDSWISH, ACT_LEAKY, ACT_NONE, ACT_SIGMOID, ACT_SILU, ACT_TANH } from '../shared';

// exp(x) for four lanes: x = n*ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^7
// (truncation error below 1e-8 relative), 2^n assembled in the exponent bits. Inputs are clamped
// so that 2^n stays a normal float: results saturate at e^-87 and e^88.
@inline
export function exp4(x: v128): v128 {
  const c = f32x4.pmin(f32x4.pmax(x, f32x4.splat(-87.0)), f32x4.splat(88.0));
  const n = f32x4.nearest(f32x4.mul(c, f32x4.splat(1.44269504088896341)));
  // ln2 split in a high part exact in few bits and the rest, so n*ln2 is subtracted without loss.
  let r = f32x4.sub(c, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.add(r, f32x4.mul(n, f32x4.splat(2.12194440e-4)));
  let p = f32x4.splat(1.0 / 5040.0);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 720.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 120.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 24.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 6.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.5));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(p, scale);
}

@inline
function sigmoid4(v: v128): v128 {
  const one = f32x4.splat(1.0);
  return f32x4.div(one, f32x4.add(one, exp4(f32x4.neg(v))));
}

// tanh(x) = sign(x) * (1 - e) / (1 + e) with e = exp(-2|x|), which never overflows.
@inline
function tanh4(v: v128): v128 {
  const one = f32x4.splat(1.0);
  const e = exp4(f32x4.mul(f32x4.abs(v), f32x4.splat(-2.0)));
  const t = f32x4.div(f32x4.sub(one, e), f32x4.add(one, e));
  return v128.or(t, v128.and(v, i32x4.splat(0x80000000)));
}

@inline
export function activate(v: v128, act: i32, p0: f32, p1: f32): v128 {
  switch (act) {
    case ACT_CLAMP: return f32x4.pmin(f32x4.pmax(v, f32x4.splat(p0)), f32x4.splat(p1));
    case ACT_LEAKY: return v128.bitselect(v, f32x4.mul(v, f32x4.splat(p0)), f32x4.ge(v, f32x4.splat(0)));
    case ACT_HARDSIGMOID: {
      const t = f32x4.add(f32x4.mul(v, f32x4.splat(p0)), f32x4.splat(p1));
      return f32x4.pmin(f32x4.pmax(t, f32x4.splat(0)), f32x4.splat(1));
    }
    case ACT_HARDSWISH: {
      const t = f32x4.add(f32x4.mul(v, f32x4.splat(1.0 / 6.0)), f32x4.splat(0.5));
      return f32x4.mul(v, f32x4.pmin(f32x4.pmax(t, f32x4.splat(0)), f32x4.splat(1)));
    }
    case ACT_SIGMOID: return sigmoid4(v);
    case ACT_TANH: return tanh4(v);
    case ACT_SILU: return f32x4.mul(v, sigmoid4(v));
    default: return v;
  }
}

@inline
export function activate1(v: f32, act: i32, p0: f32, p1: f32): f32 {
  return f32x4.extract_lane(activate(f32x4.splat(v), act, p0, p1), 0);
}

/** What the GEMM tiles and depthwise loops apply on store: Relu/Clip. Any other activation runs
 *  over the stored rows (activate_rows) while they are in cache: inlined into those loops, its
 *  code pushes their operands out of registers (SiLU in a 1x1 conv's tile cost more than a
 *  pass of its own). Either way each value gets the same operations, so the same bits. */
@inline
export function clampOnStore(v: v128, act: i32, p0: f32, p1: f32): v128 {
  return act == ACT_CLAMP ? f32x4.pmin(f32x4.pmax(v, f32x4.splat(p0)), f32x4.splat(p1)) : v;
}

/** The activations clampOnStore leaves, in place over `rows` rows of n floats `stride` bytes apart. */
export function activate_rows(y: usize, stride: usize, rows: i32, n: i32, act: i32, p0: f32, p1: f32): void {
  if (act == ACT_NONE || act == ACT_CLAMP) return;
  for (let r = 0; r < rows; r++) unary_f32_simd(y + <usize>r * stride, y + <usize>r * stride, n, act, p0, p1);
}

/** y[i] = act(x[i]) for n elements (y may equal x). */
export function unary_f32_simd(x: usize, y: usize, n: i32, act: i32, p0: f32, p1: f32): void {
  // One loop per activation, so that none dispatches per vector.
  switch (act) {
    case ACT_CLAMP: mapAct(x, y, n, ACT_CLAMP, p0, p1); break;
    case ACT_LEAKY: mapAct(x, y, n, ACT_LEAKY, p0, p1); break;
    case ACT_HARDSIGMOID: mapAct(x, y, n, ACT_HARDSIGMOID, p0, p1); break;
    case ACT_HARDSWISH: mapAct(x, y, n, ACT_HARDSWISH, p0, p1); break;
    case ACT_SIGMOID: mapAct(x, y, n, ACT_SIGMOID, p0, p1); break;
    case ACT_TANH: mapAct(x, y, n, ACT_TANH, p0, p1); break;
    case ACT_SILU: mapAct(x, y, n, ACT_SILU, p0, p1); break;
    default: mapAct(x, y, n, ACT_NONE, p0, p1);
  }
}

@inline
function mapAct(x: usize, y: usize, n: i32, act: i32, p0: f32, p1: f32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, activate(v128.load(x + o), act, p0, p1));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, activate1(load<f32>(x + o), act, p0, p1));
  }
}

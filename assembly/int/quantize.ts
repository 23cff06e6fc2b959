// Float to fixed for the model inputs: q = sat(round_half_away(x * 2^s)), computed in f64 so
// that it equals the TypeScript reference for every f32 input (x * 2^s is exact; the rounding
// add is not in f32).
import { loadQ, storeQ } from './q';

export function quantize_f32_q(x: usize, len: i32, scale: f64, lo: i32, hi: i32, y: usize, yt: i32): void {
  for (let i = 0; i < len; i++) {
    const v = <f64>load<f32>(x + (<usize>i << 2)) * scale;
    let r = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
    r = r < <f64>lo ? <f64>lo : r > <f64>hi ? <f64>hi : r;
    if (r != r) r = 0; // NaN stores as 0, as a JS typed array does
    storeQ(y, i, yt, <i32>r);
  }
}

/** Per-channel sums (f64, added to `out`) of an integer [outer][c][inner] tensor of type t. */
export function channel_sums_q(x: usize, t: i32, outer: i32, c: i32, inner: i32, out: usize): void {
  let i = 0;
  for (let o = 0; o < outer; o++) {
    for (let ch = 0; ch < c; ch++) {
      let s: i64 = 0;
      for (let j = 0; j < inner; j++, i++) {
        s += <i64>loadQ(x, i, t);
      }
      const p = out + (<usize>ch << 3);
      store<f64>(p, load<f64>(p) + <f64>s);
    }
  }
}

// Integer global average pooling: y = sat(roundShift(sum * m, n)) per plane, m = round(2^F / size)
// (sdk/quant/spec.ts avgPoolMultiplier); n < 0 is a left shift.
import { loadQ, roundShift64, storeQ } from './q';

export function global_avgpool_q(x: usize, xt: i32, planes: i32, size: i32, mult: i32, n: i32, lo: i32, hi: i32, y: usize, yt: i32): void {
  let i = 0;
  for (let p = 0; p < planes; p++) {
    let s: i64 = 0;
    for (let j = 0; j < size; j++, i++) s += <i64>loadQ(x, i, xt);
    s *= <i64>mult;
    const v = n >= 0 ? roundShift64(s, n) : s << <i64>-n;
    storeQ(y, p, yt, <i32>(v < <i64>lo ? <i64>lo : v > <i64>hi ? <i64>hi : v));
  }
}

/**
 * The requantization core and the float-to-fixed kernel called directly, on exhaustive and
 * extreme values: every shift 0..31 on int32 accumulators up to their limit, ties of both signs,
 * saturation at both ends of every type and of narrowed (activation) bounds.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmRuntime } from '../sdk/engine/wasm.js';
import { QCODE } from '../sdk/ops/fixed.js';
import { qRange, quantizeValue, roundShift, saturate, type TensorQ } from '../sdk/device/spec.js';

const TYPES: TensorQ[] = [
  { bits: 8, signed: false, scaleLog2: 0 }, { bits: 8, signed: true, scaleLog2: 0 },
  { bits: 16, signed: false, scaleLog2: 0 }, { bits: 16, signed: true, scaleLog2: 0 },
];
const VIEW = { uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array };
const typeOf = (q: TensorQ) => (q.bits === 8 ? (q.signed ? 'int8' : 'uint8') : q.signed ? 'int16' : 'uint16');

function write(rt: WasmRuntime, q: TensorQ, values: number[]): number {
  const ptr = rt.alloc(values.length * 2);
  new VIEW[typeOf(q)](rt.memory.buffer, ptr, values.length).set(values);
  return ptr;
}

test('eltwise requantization: y = sat((ka*a + kb*b + 2^(n-1)) >> n) for every shift, int32 limits, ties, bounds', async () => {
  const rt = await WasmRuntime.create();
  const k8 = rt.kernel('eltwise_q8_simd');
  const k16 = rt.kernel('eltwise_q16_scalar');
  let checked = 0;
  for (const aq of TYPES.slice(0, 2)) {
    for (const bq of TYPES.slice(0, 2)) {
      // Every a against a spread of b (odd length: the vector tail is exercised too).
      const [alo, ahi] = qRange(8, aq.signed), [blo, bhi] = qRange(8, bq.signed);
      const as: number[] = [], bs: number[] = [];
      for (let a = alo; a <= ahi; a++) for (let b = blo; b <= bhi; b += 37) { as.push(a); bs.push(b); }
      const len = as.length;
      const pa = write(rt, aq, as), pb = write(rt, bq, bs);
      for (const yq of TYPES) {
        const py = rt.alloc(len * 2);
        const [tlo, thi] = qRange(yq.bits, yq.signed);
        // Factors reaching the int32 limit with the largest rounding term (255 * (|ka| + |kb|) + 2^30 < 2^31).
        for (const [ka, kb] of [[1, 1], [1, -1], [3, 5], [2 ** 21, 2 ** 20 + 1], [-(2 ** 21), 2 ** 20 - 3]]) {
          for (let n = 0; n <= 31; n++) {
            for (const [lo, hi] of [[tlo, thi], [Math.max(tlo, 0), Math.min(thi, 96)]]) {
              if (yq.bits === 8) k8(pa, +aq.signed, ka, pb, +bq.signed, kb, len, n, lo, hi, py, +yq.signed);
              else k16(pa, QCODE[typeOf(aq)], ka, pb, QCODE[typeOf(bq)], kb, len, n, lo, hi, py, QCODE[typeOf(yq)]);
              const y = new VIEW[typeOf(yq)](rt.memory.buffer, py, len);
              for (let i = 0; i < len; i++) {
                const want = saturate(roundShift(ka * as[i] + kb * bs[i], n), lo, hi);
                if (y[i] !== want) assert.unreachable(`a=${as[i]} b=${bs[i]} ka=${ka} kb=${kb} n=${n} [${lo},${hi}] ${typeOf(yq)}: ${y[i]} != ${want}`);
              }
              checked += len;
            }
          }
        }
      }
    }
  }
  assert.ok(checked > 1e6, `${checked} values checked`);
});

test('16-bit eltwise and Mul: int64 accumulators beyond int32, every pair of operand types, one input', async () => {
  const rt = await WasmRuntime.create();
  const k16 = rt.kernel('eltwise_q16_scalar');
  const mul = rt.kernel('mul_q16_scalar');
  const vals = (q: TensorQ) => {
    const [lo, hi] = qRange(q.bits, q.signed);
    return Array.from({ length: 301 }, (_, i) => Math.round(lo + ((hi - lo) * i) / 300));
  };
  for (const aq of TYPES) {
    for (const bq of TYPES) {
      for (const yq of TYPES) {
        const as = vals(aq), bs = [...vals(bq)].reverse();
        const pa = write(rt, aq, as), pb = write(rt, bq, bs), py = rt.alloc(as.length * 2);
        const [at, bt, yt] = [aq, bq, yq].map((q) => QCODE[typeOf(q)]);
        const check = (what: string, want: (a: number, i: number) => number) => {
          const y = new VIEW[typeOf(yq)](rt.memory.buffer, py, as.length);
          as.forEach((a, i) => assert.is(y[i], saturate(want(a, i), ...qRange(yq.bits, yq.signed)), `${typeOf(aq)},${typeOf(bq)}->${typeOf(yq)} ${what} a=${a}`));
        };
        for (const [ka, kb, n] of [[2 ** 20, -(2 ** 19), 30], [1, 1, 1], [2 ** 15, 2 ** 15, 15], [7, -3, 2], [1, 0, 0]]) {
          k16(pa, at, ka, pb, bt, kb, as.length, n, ...qRange(yq.bits, yq.signed), py, yt);
          check(`ka=${ka} kb=${kb} n=${n}`, (a, i) => roundShift(ka * a + kb * bs[i], n));
        }
        k16(pa, at, 3, 0, bt, 0, as.length, 1, ...qRange(yq.bits, yq.signed), py, yt);
        check('one input', (a) => roundShift(3 * a, 1));
        for (const n of [0, 7, 20]) {
          mul(pa, at, pb, bt, as.length, n, ...qRange(yq.bits, yq.signed), py, yt);
          check(`mul n=${n}`, (a, i) => roundShift(a * bs[i], n));
        }
      }
    }
  }
});

test('float to fixed: round half away from zero, ties of both signs, saturation, NaN and infinities', async () => {
  const rt = await WasmRuntime.create();
  const k = rt.kernel('quantize_f32_q');
  const xs = [0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999997, -0.49999997, 127.5, -128.5, 128, -129, 255.5, 1e9, -1e9, NaN, Infinity, -Infinity, 0, -0];
  for (let i = 0; i < 200; i++) xs.push(Math.fround(Math.sin(i) * 300));
  const px = rt.alloc(xs.length * 4);
  rt.f32(px, xs.length).set(xs);
  for (const q of TYPES) {
    for (const s of [-3, 0, 1, 4]) {
      const fq = { ...q, scaleLog2: s };
      const py = rt.alloc(xs.length * 2);
      k(px, xs.length, 2 ** s, ...qRange(q.bits, q.signed), py, QCODE[typeOf(q)]);
      const y = new VIEW[typeOf(q)](rt.memory.buffer, py, xs.length);
      const want = new VIEW[typeOf(q)](xs.length);
      xs.forEach((x, i) => { want[i] = quantizeValue(Math.fround(x), fq); });
      assert.equal(Array.from(y), Array.from(want), `${typeOf(q)} scale 2^${s}`);
    }
  }
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmRuntime } from '../sdk/engine/wasm.js';
import { clipErrorRef, extremesRef, histogramRef, minMaxRef, sqnrSumsRef, StatsKernels, subsample2Count, subsample2Ref, tailsRef } from '../sdk/quant/histogram.js';
import { batchRange, batchRanges, mseClip, parseEstimator, pact2Clip, RunningRange, tensorQ, type TensorStats } from '../sdk/quant/ranges.js';
import { deviceBias, roundHalfAway, roundShift } from '../sdk/device/spec.js';
import { analyzeWeights, quantizeWeights, weightClip, weightScales, type WeightAnalysis } from '../sdk/quant/weights.js';
import { conv, type ConvParams } from '../sdk/ops/conv.js';
import type { BiasMode, Bits } from '../sdk/device/spec.js';
import { tensor } from '../sdk/graph/ir.js';
import { rng } from './helpers.js';

async function kernels() {
  const rt = await WasmRuntime.create();
  return { rt, k: new StatsKernels(rt, 64) };
}

function place(rt: WasmRuntime, x: Float32Array): number {
  const p = rt.alloc(x.byteLength);
  rt.f32(p, x.length).set(x);
  return p;
}

test('statistics kernels equal their references bit for bit on random data', async () => {
  const { rt, k } = await kernels();
  const r = rng(11);
  for (let trial = 0; trial < 40; trial++) {
    const n = 1 + Math.floor(r(0, 5000));
    const spread = 10 ** r(-3, 3);
    const x = Float32Array.from({ length: n }, () => r(-spread, spread * r(0, 2)));
    // Values exactly on bin edges and duplicates of the extremes exercise the rounding.
    for (let i = 0; i < n / 10; i++) x[Math.floor(r(0, n))] = x[0];
    const p = place(rt, x);
    const [lo, hi] = minMaxRef(x);
    assert.equal(k.minMax(p, n), [lo, hi]);
    for (const bins of [256, 2048, 7]) {
      for (const absolute of [false, true]) {
        const a = absolute ? 0 : lo, b = absolute ? Math.max(Math.abs(lo), Math.abs(hi)) : hi;
        const ref = new Uint32Array(bins);
        histogramRef(x, a, b, ref, absolute);
        const got = k.histogram(p, n, a, b, bins, absolute);
        assert.equal(Array.from(got), Array.from(ref), `trial ${trial} bins ${bins} abs ${absolute}`);
        assert.is(got.reduce((s, v) => s + v, 0), n);
        for (const cut of [0, 0.5, n * 1e-4, n * 0.3, n]) assert.equal(k.tailsOf(got, cut), tailsRef(ref, cut));
      }
    }
  }
  // A constant tensor puts everything in bin 0.
  const c = new Float32Array(33).fill(2.5);
  const h = k.histogram(place(rt, c), 33, 2.5, 2.5, 256, false);
  assert.is(h[0], 33);
});

test('SQNR sums kernel equals its reference bit for bit for every integer type and tail length', async () => {
  const { rt, k } = await kernels();
  const r = rng(23);
  const types = [[Uint8Array, 0, 255], [Int8Array, -128, 127], [Uint16Array, 0, 65535], [Int16Array, -32768, 32767]] as const;
  for (const [code, [Q, lo, hi]] of types.entries()) {
    for (const n of [1, 3, 4, 7, 64, 1001]) {
      const scaleLog2 = Math.floor(r(-2, 9));
      const x = Float32Array.from({ length: n }, () => r(lo, hi) * 2 ** -scaleLog2 * r(0.9, 1.1));
      const xp = place(rt, x);
      const qp = rt.alloc(n * Q.BYTES_PER_ELEMENT);
      const q = new Q(rt.memory.buffer, qp, n);
      for (let i = 0; i < n; i++) q[i] = Math.round(r(lo, hi));
      const got = k.sqnrSums(xp, qp, code, n, 2 ** -scaleLog2);
      assert.equal(got, sqnrSumsRef(x, q, 2 ** -scaleLog2), `${Q.name} n=${n}`);
      // The same sums in plain f64 order agree to rounding.
      let s = 0, e = 0;
      for (let i = 0; i < n; i++) {
        s += x[i] * x[i];
        e += (x[i] - q[i] * 2 ** -scaleLog2) ** 2;
      }
      assert.ok(Math.abs(got[0] - s) <= 1e-12 * s && Math.abs(got[1] - e) <= 1e-9 * s, `${Q.name} n=${n}: ${got} vs ${[s, e]}`);
    }
  }
});

test('clip error kernel equals its reference bit for bit: values outside a clip and their squared excess', async () => {
  const { rt, k } = await kernels();
  const r = rng(29);
  for (const n of [0, 1, 5, 64, 1001]) {
    const x = Float32Array.from({ length: n }, () => r(-3, 3) ** 3);
    if (n > 3) [x[0], x[1], x[2]] = [NaN, Infinity, -2.5];
    const xp = place(rt, x);
    for (const [lo, hi] of [[-2.5, 2.5], [0, 1 - 2 ** -9], [-Infinity, Infinity], [1, 1]]) {
      const got = k.clipError(xp, n, lo, hi);
      assert.equal(got, clipErrorRef(x, lo, hi), `n=${n} [${lo}, ${hi}]`);
      assert.is(got[0], Array.from(x).filter((v) => v < lo || v > hi).length);
    }
  }
  // Bounds between two f32 (the kernel skips blocks by f32 compares), values on and next to them,
  // a few outliers among many values inside (most blocks skipped), tiny and huge bounds.
  for (let trial = 0; trial < 40; trial++) {
    const n = 1 + Math.floor(r(0, 700));
    const lo = -r(0.01, 4) * (1 + 1e-9), hi = r(0.01, 4) * (1 - 1e-9);
    const near = [lo, hi].flatMap((b) => [Math.fround(b), b + Math.abs(b) * 2 ** -23, b - Math.abs(b) * 2 ** -23]);
    const x = Float32Array.from({ length: n }, () => {
      const u = r(0, 1);
      return u < 0.03 ? r(-8, 8) : u < 0.08 ? near[Math.floor(r(0, near.length))] : r(lo, hi);
    });
    const xp = place(rt, x);
    for (const [a, b] of [[lo, hi], [0, hi], [1e-50, 1e300], [-1e300, -1e-50], [-1e-50, 1e-50]]) {
      assert.equal(k.clipError(xp, n, a, b), clipErrorRef(x, a, b), `trial ${trial} n=${n} [${a}, ${b}]`);
    }
  }
});

test('stride-2 subsampled histogram kernel equals the reference on the subsample, for every offset', async () => {
  const { rt, k } = await kernels();
  const r = rng(21);
  for (const [planes, h, w] of [[1, 1, 1], [3, 5, 7], [2, 8, 8], [4, 13, 2]]) {
    const x = Float32Array.from({ length: planes * h * w }, () => r(-3, 3));
    const p = place(rt, x);
    for (const [oy, ox] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
      if (oy >= h || ox >= w) continue;
      const sub = subsample2Ref(x, planes, h, w, oy, ox);
      assert.is(sub.length, subsample2Count(planes, h, w, oy, ox));
      const ref = new Uint32Array(256);
      histogramRef(sub, -3, 3, ref);
      assert.equal(Array.from(k.histogramSub2(p, planes, h, w, oy, ox, -3, 3, 256)), Array.from(ref));
    }
  }
});

test('channel sums kernel matches a float64 reference within float32 rounding', async () => {
  const { rt, k } = await kernels();
  const r = rng(5);
  for (const [n, c, size] of [[1, 3, 1], [2, 5, 7], [1, 17, 49], [3, 1, 1000]]) {
    const x = Float32Array.from({ length: n * c * size }, () => r(-4, 4));
    const got = k.channelSums(place(rt, x), n, c, size);
    for (let ch = 0; ch < c; ch++) {
      let s = 0;
      for (let b = 0; b < n; b++) for (let i = 0; i < size; i++) s += x[(b * c + ch) * size + i];
      assert.ok(Math.abs(got[ch] - s) <= 1e-5 * n * size, `${got[ch]} vs ${s}`);
    }
  }
});

function statsOf(x: Float32Array): TensorStats {
  return {
    count: x.length,
    minMax: () => minMaxRef(x),
    histogram: (lo, hi, bins, absolute) => { const h = new Uint32Array(bins); histogramRef(x, lo, hi, h, absolute); return h; },
    tails: tailsRef,
  };
}

test('extremes kernel (min, max, m-th smallest and largest in one pass) equals its reference', async () => {
  const { rt, k } = await kernels();
  const r = rng(31);
  const shapes: [string, (i: number, n: number) => number][] = [
    ['random', () => r(-5, 5)], ['few values', () => Math.floor(r(0, 4)) - 1.5], ['ascending', (i) => i * 0.25 - 3],
    ['descending', (i, n) => (n - i) * 0.5], ['relu', () => Math.max(0, r(-3, 2))], ['constant', () => 2.5],
  ];
  for (const [name, gen] of shapes) {
    for (const n of [1, 3, 16, 17, 100, 4099]) {
      const x = Float32Array.from({ length: n }, (_, i) => gen(i, n));
      const p = place(rt, x);
      for (const m of new Set([1, 2, 7, Math.ceil(n / 3), n].filter((v) => v <= Math.min(n, StatsKernels.maxExtremes)))) {
        const got = k.extremes(p, n, m)!;
        const ref = extremesRef(x, m);
        // -0 and +0 compare equal and fall in the same bin: compare values, not signs of zero.
        assert.ok(got.min === ref.min && got.max === ref.max && got.low === ref.low && got.high === ref.high, `${name} n=${n} m=${m}: ${JSON.stringify(got)} vs ${JSON.stringify(ref)}`);
      }
    }
  }
  const x = place(rt, new Float32Array(10));
  assert.is(k.extremes(x, 10, 0), undefined);
  assert.is(k.extremes(x, 10, 11), undefined);
  assert.is(k.extremes(place(rt, new Float32Array(5000)), 5000, StatsKernels.maxExtremes + 1), undefined);
});

test('percentile ranges from the extremes equal those from the histogram tails exactly', async () => {
  const { rt, k } = await kernels();
  const r = rng(37);
  for (let trial = 0; trial < 30; trial++) {
    const n = 1 + Math.floor(r(0, 60_000));
    const spread = 10 ** r(-3, 3);
    const x = Float32Array.from({ length: n }, () => (r(0, 1) < 0.3 ? 0 : r(-spread, spread * r(0, 3))));
    for (let i = 0; i < n / 50; i++) x[Math.floor(r(0, n))] = x[Math.floor(r(0, n))];
    const p = place(rt, x);
    const stats = {
      count: n,
      minMax: () => k.minMax(p, n),
      histogram: (lo: number, hi: number, bins: number, absolute: boolean) => k.histogram(p, n, lo, hi, bins, absolute),
      tails: (h: Uint32Array, cut: number) => k.tailsOf(h, cut),
    };
    for (const percentile of [99.99, 99.9, 99, 90, 60]) {
      const est = { kind: 'percentile' as const, percentile };
      const viaHistogram = batchRange(est, stats);
      assert.equal(batchRange(est, { ...stats, extremes: (m) => k.extremes(p, n, m) }), viaHistogram, `trial ${trial} n=${n} p=${percentile}`);
      assert.equal(batchRange(est, { ...stats, extremes: (m) => extremesRef(x, m) }), viaHistogram);
    }
  }
});

test('range estimators: minmax keeps outliers, percentile cuts 0.01 % tails, mse and entropy clip heavy tails', () => {
  const r = rng(3);
  const x = Float32Array.from({ length: 400_000 }, () => r(0, 1) + r(0, 1) + r(0, 1) - 1.5); // bell on [-1.5, 1.5]
  x[0] = 40; // one outlier
  assert.equal(batchRange({ kind: 'minmax' }, statsOf(x)), minMaxRef(x));
  const [plo, phi] = batchRange(parseEstimator('percentile:99.99'), statsOf(x));
  assert.ok(phi < 2 && phi > 1, `percentile hi ${phi}`);
  assert.ok(plo < -1 && plo >= minMaxRef(x)[0], `percentile lo ${plo}`);
  const [, mhi] = batchRange({ kind: 'mse' }, statsOf(x));
  // Minmax would need a clip of 64; the MSE trade-off between one outlier and 400k rounding errors lands lower.
  assert.ok(mhi <= 16 && Number.isInteger(Math.log2(mhi)), `mse clip ${mhi}`);
  const [elo, ehi] = batchRange({ kind: 'entropy' }, statsOf(x));
  assert.ok(ehi < 10 && ehi >= 1 && elo === -ehi, `entropy ${elo} ${ehi}`); // clips the outlier, keeps the bell
  // At 16 bits the percentile's cut costs the outlier more than rounding the bell on a clip of 64.
  assert.equal(batchRange(parseEstimator('percentile:99.99'), statsOf(x), 16), minMaxRef(x));
  assert.equal(batchRanges({ kind: 'minmax' }, statsOf(x), [8, 16]), [minMaxRef(x), minMaxRef(x)]);
  const [m8, m16] = batchRanges({ kind: 'mse' }, statsOf(x), [8, 16]);
  assert.ok(m16[1] > m8[1], `mse clips ${m8} at 8 bits, ${m16} at 16`);
  // A cut worth its error stays at 16 bits: 5 values just past 2 among 10^5 below it.
  const edge = Float32Array.from({ length: 100_000 }, (_, i) => (i < 5 ? 2.001 : r(0, 1.99)));
  const [, e16] = batchRange(parseEstimator('percentile:99.99'), statsOf(edge), 16);
  assert.ok(e16 < 2, `16-bit clip ${e16}`);
  assert.equal(parseEstimator('percentile'), { kind: 'percentile', percentile: 99.99 });
  assert.throws(() => parseEstimator('percentile:20'), /percentile must be/);
  assert.throws(() => parseEstimator('kl'), /unknown range estimator/);
});

test('mse clip prefers the smaller power of 2 when the tail is a single outlier', () => {
  const hist = new Uint32Array(2048);
  hist[100] = 100_000_000; // mass around 100 * width ~ 0.39
  hist[2047] = 1;
  const width = 8 / 2047;
  assert.is(mseClip(hist, width, 256), 0.5);
});

test('running average and power-of-2 clips follow DESIGN.md', () => {
  const rr = new RunningRange();
  rr.update([-1, 4]);
  assert.equal([rr.min, rr.max], [-1, 4]);
  rr.update([-3, 2]);
  assert.equal([rr.min, rr.max], [-2, 3]); // f = 1/2
  for (let i = 0; i < 2000; i++) rr.update([0, 10]);
  assert.ok(rr.max > 9.8 && rr.max < 10, `${rr.max}`); // f bottoms out at 0.001
  assert.equal(pact2Clip(0, 6), { signed: false, clip2: 8 });
  assert.equal(pact2Clip(-3, 2.5), { signed: true, clip2: 4 });
  assert.equal(pact2Clip(0, 0), { signed: false, clip2: 2 ** -16 });
  assert.equal(tensorQ(0, 6, 8), { bits: 8, signed: false, scaleLog2: 5 }); // 256 / 8 = 32
  assert.equal(tensorQ(-3, 2.5, 8), { bits: 8, signed: true, scaleLog2: 5 }); // 128 / 4
  assert.equal(tensorQ(0, 1000, 16), { bits: 16, signed: false, scaleLog2: 6 }); // 65536 / 1024
});

test('device rounding: half away from zero, round-shift half up', () => {
  assert.equal([2.5, -2.5, 0.49, -0.5, 3].map(roundHalfAway), [3, -3, 0, -1, 3]);
  assert.equal([[5, 1], [-5, 1], [-6, 2], [7, 0], [3, -2]].map(([a, n]) => roundShift(a, n)), [3, -2, -1, 7, 12]);
});

test('device bias: 16-bit, plain int16, and the three branches of the MMA split', () => {
  assert.equal(deviceBias(1.5, 10, 12, 16, 'mma', false), { value: 1.5 * 2 ** 22 });
  assert.equal(deviceBias(100, 8, 8, 8, 'int16', false), { value: 32767 });
  // f = 2^9 = 512 > 255: biasA = trunc(sat16(bias*f) / 255), biasB = 255.
  const big = deviceBias(0.5, 9, 4, 8, 'mma', false);
  assert.equal(big, { value: Math.trunc(4096 / 255) * 255, biasA: 16, biasB: 255 });
  // 1 < f <= 127 (signed input): biasA = bias at the weight scale, biasB = f.
  assert.equal(deviceBias(-0.75, 5, 3, 8, 'mma', true), { value: -6 * 32, biasA: -6, biasB: 32 });
  // f <= 1: biasA = trunc(bias * f), biasB = 1.
  assert.equal(deviceBias(3.3, -2, 4, 8, 'mma', false), { value: Math.trunc(53 / 4), biasA: 13, biasB: 1 });
});

const quantize = (a: WeightAnalysis, bias: Float32Array, inLog2: number, opts: { bits: Bits; biasMode: BiasMode; signedInput?: boolean }) => {
  const { scaleLog2, biasCapped } = weightScales(a, bias, inLog2, opts);
  return { ...quantizeWeights(a, scaleLog2, opts.bits), biasCapped };
};

test('weights: power-of-2 scales, per-channel, the clipping rule and the bias cap', () => {
  const w = tensor('float32', [2, 1, 1, 3], [0.5, -0.25, 0.125, 4, -3, 0.01]);
  const layout = conv.weights!.layout({} as ConvParams, w);
  const bias = Float32Array.from([0, 0]);
  const perTensor = quantize(analyzeWeights(w, layout, false, false), bias, 5, { bits: 8, biasMode: 'mma' });
  assert.equal(perTensor.scaleLog2, [5]); // 128 / 2^ceil(log2 4)
  assert.equal(Array.from(perTensor.data), [16, -8, 4, 127, -96, 0]); // 4 * 32 = 128 saturates
  const perChannel = quantize(analyzeWeights(w, layout, true, false), bias, 5, { bits: 8, biasMode: 'mma' });
  assert.equal(perChannel.scaleLog2, [8, 5]);
  assert.equal(Array.from(perChannel.data.slice(0, 3)), [127, -64, 32]);
  // A bias of 300 at the weight scale 2^5 would need 9600 (fits); at 2^8 it would not: the cap lowers it.
  const capped = quantize(analyzeWeights(w, layout, true, false), Float32Array.from([300, 0]), 5, { bits: 8, biasMode: 'mma' });
  assert.equal(capped.scaleLog2, [6, 5]);
  assert.ok(capped.biasCapped);
  // Where the input factor 2^in exceeds biasB's bound (2^9 > 255), the MMA bias is biasA(int8) x
  // biasB at the accumulator scale: 4 at 2^8 fits the int16 (1024) but saturates there (127 x 255,
  // not 4 x 2^17). A per-channel scale is lowered until 4 x 2^(9 + w) < 128 x 255: w = 3, where
  // the bias is exact to biasA's truncation.
  assert.equal(deviceBias(4, 9, 8, 8, 'mma', false).value, 127 * 255);
  const product = quantize(analyzeWeights(w, layout, true, false), Float32Array.from([4, 0]), 9, { bits: 8, biasMode: 'mma' });
  assert.equal(product.scaleLog2, [3, 5]);
  assert.ok(Math.abs(deviceBias(4, 9, 3, 8, 'mma', false).value - 4 * 2 ** 12) < 255);
  // A per-tensor scale trades every channel's bits against the saturated bias: at 2^5 the bias 4
  // saturates at 1.99 (an excess of 2, squared 4, against rounding noise of order 1e-4), at 2^4
  // only by 0.02 (4e-4, less than the noise 2^3 would add): 2^4.
  const excess = (wLog2: number, b: number) => Math.abs(b - deviceBias(b, 9, wLog2, 8, 'mma', false).value / 2 ** (9 + wLog2));
  assert.equal(quantize(analyzeWeights(w, layout, false, false), Float32Array.from([4, 0]), 9, { bits: 8, biasMode: 'mma' }).scaleLog2, [4]);
  assert.ok(excess(5, 4) > 1.9 && excess(4, 4) < 0.05, `${excess(5, 4)} ${excess(4, 4)}`);
  // A dead channel (weights 0, a large negative bias, a Relu after it) stays at 0 whatever its
  // bias saturates to: it does not lower the others' scale; without the Relu it does.
  const dead = tensor('float32', [2, 1, 1, 3], [0.5, -0.25, 0.125, 0, 0, 0]);
  const deadBias = Float32Array.from([0.1, -3000]);
  const deadScale = (unsignedOutput: boolean) => weightScales(analyzeWeights(dead, layout, false, false), deadBias, 5, { bits: 8, biasMode: 'mma', unsignedOutput }).scaleLog2;
  assert.equal(deadScale(true), [8]);
  assert.equal(deadScale(false), [3]); // 3000 * 2^3 fits the int16, 3000 * 2^4 does not
  // A signed input bounds biasB at 127: a bias of 1 needs w <= 4 there, an unsigned input allows 5.
  assert.equal(quantize(analyzeWeights(w, layout, true, false), Float32Array.from([1, 0]), 9, { bits: 8, biasMode: 'mma', signedInput: true }).scaleLog2, [4, 5]);
  assert.equal(quantize(analyzeWeights(w, layout, true, false), Float32Array.from([1, 0]), 9, { bits: 8, biasMode: 'mma' }).scaleLog2, [5, 5]);
  // int16 bias mode bounds the bias at the accumulator scale: 2^(5 + w) * 300 <= 32767 -> w <= 1.
  assert.equal(quantize(analyzeWeights(w, layout, false, false), Float32Array.from([300, 0]), 5, { bits: 8, biasMode: 'int16' }).scaleLog2, [1]);
  // Clipping: max 40 > 15 and > 16 * median -> clip to 2^ceil(log2(16 * median)) * 120/128.
  const outlier = Float32Array.from({ length: 101 }, (_, i) => (i === 100 ? 40 : (i % 7) * 0.1 + 0.05));
  const clip = weightClip(outlier)!;
  const median = [...outlier].map(Math.abs).sort((a, b) => a - b)[50];
  assert.is(clip, 2 ** Math.ceil(Math.log2(16 * median)) * (120 / 128));
  assert.is(weightClip(Float32Array.from([20, 19, 18])), undefined); // max > 15 but not an outlier
  assert.is(weightClip(Float32Array.from([14, 0.1, 0.1, 0.1])), undefined); // max <= 15
  // At 16 bits the clip must lower the quantization error: cutting 40 to 1.875 costs far more than
  // the rounding it saves, so the same weights keep their range.
  assert.is(weightClip(outlier, 16), undefined);
  const error = (a: WeightAnalysis, bits: Bits) => {
    const { scaleLog2 } = weightScales(a, Float32Array.from([0]), 0, { bits, biasMode: 'mma' });
    const q = quantizeWeights(a, scaleLog2, bits).data;
    return outlier.reduce((e, v, i) => e + (v - q[i] / 2 ** scaleLog2[0]) ** 2, 0);
  };
  const wo = tensor('float32', [1, 1, 1, 101], outlier);
  const lo = conv.weights!.layout({} as ConvParams, wo);
  const forced = analyzeWeights(tensor('float32', [1, 1, 1, 101], outlier.map((v) => Math.min(v, clip))), lo, false, false);
  assert.ok(error(analyzeWeights(wo, lo, false, true, 16), 16) < error(forced, 16));
  assert.is(analyzeWeights(wo, lo, false, true, 8).clippedTo, clip);
  const q16 = quantize(analyzeWeights(w, layout, false, false), bias, 5, { bits: 16, biasMode: 'mma' });
  assert.equal(q16.scaleLog2, [13]);
  assert.is(q16.data[3], 32767);
  assert.is(q16.data[5], roundHalfAway(0.01 * 2 ** 13));
});

test.run();

/**
 * Activation statistics: plain references (the spec in code) and their WASM kernels
 * (assembly/stats/histogram.ts), which tests hold bit-exact to these references.
 */
import type { WasmRuntime } from '../engine/wasm.js';

const f = Math.fround;

export function minMaxRef(x: Float32Array): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < x.length; i++) {
    lo = Math.min(lo, x[i]);
    hi = Math.max(hi, x[i]);
  }
  return [lo, hi];
}

/** The scale k of a histogram of `bins` over [lo, hi], in float32. */
export function binScale(lo: number, hi: number, bins: number): number {
  return hi > lo ? f(f(bins - 1) / f(hi - lo)) : 0;
}

/** bin = floor((v - lo) * k + 0.5), clamped to [0, bins - 1], all in float32 arithmetic. */
export function binOf(v: number, lo: number, k: number, bins: number): number {
  const b = Math.floor(f(f(f(v - lo) * k) + 0.5));
  if (!(b >= 0)) return 0; // NaN lands in bin 0, as the kernel's saturating conversion does
  return b > bins - 1 ? bins - 1 : b;
}

/** bin = floor((v - lo) * (bins - 1) / (hi - lo) + 0.5), clamped, all in float32 arithmetic. */
export function histogramRef(x: Float32Array, lo: number, hi: number, hist: Uint32Array, absolute = false): void {
  const bins = hist.length;
  const k = binScale(lo, hi, bins);
  for (let i = 0; i < x.length; i++) hist[binOf(absolute ? Math.abs(x[i]) : x[i], lo, k, bins)]++;
}

/** A tensor's min and max, and its m-th smallest and m-th largest values. */
export interface Extremes {
  min: number;
  max: number;
  low: number;
  high: number;
}

/** Extremes for 1 <= m <= n, by sorting a copy. */
export function extremesRef(x: Float32Array, m: number): Extremes {
  const [min, max] = minMaxRef(x);
  const sorted = Float32Array.from(x).sort();
  return { min, max, low: sorted[m - 1], high: sorted[x.length - m] };
}

/** The stride-2 subsample of [planes, h, w] planes at row/column offsets (oy, ox). */
export function subsample2Ref(x: Float32Array, planes: number, h: number, w: number, oy: number, ox: number): Float32Array {
  const out: number[] = [];
  for (let p = 0; p < planes; p++) for (let y = oy; y < h; y += 2) for (let c = ox; c < w; c += 2) out.push(x[(p * h + y) * w + c]);
  return Float32Array.from(out);
}

/** Elements in that subsample. */
export function subsample2Count(planes: number, h: number, w: number, oy: number, ox: number): number {
  return planes * Math.ceil((h - oy) / 2) * Math.ceil((w - ox) / 2);
}

/** First bin from the low end, and last from the high end, where the cumulative count reaches `cut`. */
export function tailsRef(hist: Uint32Array, cut: number): [number, number] {
  const bins = hist.length;
  let acc = 0, lo = 0;
  for (; lo < bins - 1; lo++) if ((acc += hist[lo]) >= cut) break;
  acc = 0;
  let hi = bins - 1;
  for (; hi > 0; hi--) if ((acc += hist[hi]) >= cut) break;
  return [lo, hi];
}

/**
 * Float-vs-fixed error terms of a tensor for its SQNR: [sum f^2, sum (f - q * step)^2], in f64,
 * element i in lane i % 4 up to the last multiple of 4, the rest in order, combined as
 * ((l0 + l1) + (l2 + l3)) + rest: the kernel's order (four SIMD lanes), so that both agree exactly.
 */
export function sqnrSumsRef(x: Float32Array, q: ArrayLike<number>, step: number): [number, number] {
  const s = [0, 0, 0, 0], e = [0, 0, 0, 0];
  const n4 = x.length - (x.length % 4);
  for (let i = 0; i < n4; i++) {
    const d = x[i] - q[i] * step;
    s[i & 3] += x[i] * x[i];
    e[i & 3] += d * d;
  }
  let ts = 0, te = 0;
  for (let i = n4; i < x.length; i++) {
    const d = x[i] - q[i] * step;
    ts += x[i] * x[i];
    te += d * d;
  }
  return [s[0] + s[1] + (s[2] + s[3]) + ts, e[0] + e[1] + (e[2] + e[3]) + te];
}

/** What a clip [lo, hi] cuts of a tensor: [values outside it, sum of (x - clamp(x))^2], in order. */
export function clipErrorRef(x: Float32Array, lo: number, hi: number): [number, number] {
  let count = 0, err = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const d = v < lo ? v - lo : v > hi ? v - hi : 0;
    if (d !== 0) {
      count++;
      err += d * d;
    }
  }
  return [count, err];
}

/** The same statistics computed by the WASM kernels on tensors already in WASM memory. */
export class StatsKernels {
  private readonly scratch: number;
  private readonly maxBins = 2048;
  private readonly minmax: (x: number, n: number, out: number) => void;
  private readonly hist: (x: number, n: number, lo: number, hi: number, bins: number, h: number, abs: number) => void;
  private readonly hist2: (x: number, planes: number, h: number, w: number, oy: number, ox: number, lo: number, hi: number, bins: number, hist: number, abs: number) => void;
  private readonly tails: (h: number, bins: number, cut: number, out: number) => void;
  private readonly sums: (x: number, n: number, c: number, size: number, out: number) => void;
  private readonly sqnr: (x: number, q: number, t: number, n: number, step: number, out: number) => void;
  private readonly extreme: (x: number, n: number, m: number, heap: number, out: number) => void;
  private readonly clipErr: (x: number, n: number, lo: number, hi: number, out: number) => void;
  /** The largest m extremes() takes (its heaps are reserved up front). */
  static readonly maxExtremes = 4096;
  private readonly heap: number;
  private readonly sumsBuf: number;

  /** Memory is reserved up front (`maxChannels` for channelSums): allocating later could grow
   *  the memory under an engine's views in the middle of a run. */
  constructor(private readonly rt: WasmRuntime, private readonly maxChannels = 0) {
    // Histograms count into 8 copies (see histogram_f32_simd).
    this.scratch = rt.alloc(8 * this.maxBins * 4 + 16, 'statistics scratch');
    this.sumsBuf = rt.alloc(maxChannels * 8, 'channel sums');
    this.heap = rt.alloc(2 * StatsKernels.maxExtremes * 4, 'extremes heaps');
    this.extreme = rt.kernel('extremes_f32_simd') as never;
    this.minmax = rt.kernel('minmax_f32_simd') as never;
    this.hist = rt.kernel('histogram_f32_simd') as never;
    this.hist2 = rt.kernel('histogram_f32_sub2') as never;
    this.tails = rt.kernel('histogram_tails') as never;
    this.sums = rt.kernel('channel_sums_f32') as never;
    this.sqnr = rt.kernel('sqnr_sums_f32_q') as never;
    this.clipErr = rt.kernel('clip_error_f32') as never;
  }

  minMax(ptr: number, n: number): [number, number] {
    this.minmax(ptr, n, this.scratch);
    const v = this.rt.f32(this.scratch, 2);
    return [v[0], v[1]];
  }

  /** Histogram into a fresh Uint32Array of `bins` counts. */
  histogram(ptr: number, n: number, lo: number, hi: number, bins: number, absolute = false): Uint32Array {
    if (bins > this.maxBins) throw new Error(`at most ${this.maxBins} bins`);
    new Uint32Array(this.rt.memory.buffer, this.scratch, 8 * bins).fill(0);
    this.hist(ptr, n, lo, hi, bins, this.scratch, absolute ? 1 : 0);
    return new Uint32Array(this.rt.memory.buffer, this.scratch, bins).slice();
  }

  /** Histogram of the stride-2 subsample of [planes, h, w] planes at offsets (oy, ox). */
  histogramSub2(ptr: number, planes: number, h: number, w: number, oy: number, ox: number, lo: number, hi: number, bins: number, absolute = false): Uint32Array {
    if (bins > this.maxBins) throw new Error(`at most ${this.maxBins} bins`);
    new Uint32Array(this.rt.memory.buffer, this.scratch, bins).fill(0);
    this.hist2(ptr, planes, h, w, oy, ox, lo, hi, bins, this.scratch, absolute ? 1 : 0);
    return new Uint32Array(this.rt.memory.buffer, this.scratch, bins).slice();
  }

  /** Tail search on a histogram (copied into WASM memory). */
  tailsOf(hist: Uint32Array, cut: number): [number, number] {
    new Uint32Array(this.rt.memory.buffer, this.scratch, hist.length).set(hist);
    const out = this.scratch + this.maxBins * 4;
    this.tails(this.scratch, hist.length, cut, out);
    const v = new Int32Array(this.rt.memory.buffer, out, 2);
    return [v[0], v[1]];
  }

  /** extremesRef in one pass, for 1 <= m <= min(n, maxExtremes); otherwise undefined. */
  extremes(ptr: number, n: number, m: number): Extremes | undefined {
    if (!(m >= 1 && m <= n && m <= StatsKernels.maxExtremes)) return undefined;
    this.extreme(ptr, n, m, this.heap, this.scratch);
    const [min, max, low, high] = this.rt.f32(this.scratch, 4);
    return { min, max, low, high };
  }

  /** sqnrSumsRef of n f32 values at `x` and n integers of type code `t` (QCODE) at `q`. */
  sqnrSums(x: number, q: number, t: number, n: number, step: number): [number, number] {
    this.sqnr(x, q, t, n, step, this.scratch);
    const v = new Float64Array(this.rt.memory.buffer, this.scratch, 2);
    return [v[0], v[1]];
  }

  /** clipErrorRef of n f32 values at `x`. */
  clipError(x: number, n: number, lo: number, hi: number): [number, number] {
    this.clipErr(x, n, lo, hi, this.scratch);
    const v = new Float64Array(this.rt.memory.buffer, this.scratch, 2);
    return [v[0], v[1]];
  }

  /** Per-channel sums of an [n, c, size] tensor, into `out` (c values) or a new array. */
  channelSums(ptr: number, n: number, c: number, size: number, out: Float64Array = new Float64Array(c)): Float64Array {
    if (c > this.maxChannels) throw new Error(`channelSums: ${c} channels, reserved for ${this.maxChannels}`);
    new Float64Array(this.rt.memory.buffer, this.sumsBuf, c).fill(0);
    this.sums(ptr, n, c, size, this.sumsBuf);
    out.set(new Float64Array(this.rt.memory.buffer, this.sumsBuf, c));
    return out;
  }
}

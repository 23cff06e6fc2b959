/**
 * PACT2 activation ranges (DESIGN.md §4): a per-batch range from an estimator, a running
 * average across batches, then the power-of-2 clip and the 8/16-bit scale it implies. The
 * estimators pick clips for the bit width in use: a batch gives one range per bit width.
 */
import { fail } from '../errors.js';
import { binOf, binScale, type Extremes } from './histogram.js';
import { ceilLog2, floorLog2, log } from '../util/math.js';
import type { Bits, TensorQ } from '../device/spec.js';

export type Estimator =
  | { kind: 'minmax' }
  /** Histogram of 256 bins over [min, max]; cut (100 - p) % of the mass from each tail. */
  | { kind: 'percentile'; percentile: number }
  /** KL divergence between the float histogram and its quantized version, as TensorRT. */
  | { kind: 'entropy' }
  /** The power of 2 minimizing the quantization MSE estimated on the histogram. */
  | { kind: 'mse' };

/** The seed's histogram method: 0.01 % tails. */
export const DEFAULT_PERCENTILE = 99.99;

export function parseEstimator(text: string): Estimator {
  if (text === 'minmax' || text === 'entropy' || text === 'mse') return { kind: text };
  const m = /^percentile(?::([0-9.]+))?$/.exec(text);
  if (m) {
    const percentile = m[1] === undefined ? DEFAULT_PERCENTILE : Number(m[1]);
    if (!(percentile > 50 && percentile <= 100)) fail('BAD_OPTION', `percentile must be in (50, 100], got ${m[1]}`);
    return { kind: 'percentile', percentile };
  }
  return fail('BAD_OPTION', `unknown range estimator "${text}" (minmax, percentile:<p>, entropy, mse)`);
}

export function estimatorName(e: Estimator): string {
  return e.kind === 'percentile' ? `percentile:${e.percentile}` : e.kind;
}

/** What an estimator needs from a tensor's values (computed by WASM kernels in calibration). */
export interface TensorStats {
  count: number;
  minMax(): [number, number];
  /** Min, max and the m-th smallest and largest values in one pass, where that is available. */
  extremes?(m: number): Extremes | undefined;
  histogram(lo: number, hi: number, bins: number, absolute: boolean): Uint32Array;
  tails(hist: Uint32Array, cut: number): [number, number];
}

const ENTROPY_BINS = 2048;

/** The range one batch suggests for a tensor at one bit width. */
export function batchRange(est: Estimator, s: TensorStats, bits: Bits = 8): [number, number] {
  return batchRanges(est, s, [bits])[0];
}

/**
 * The range one batch suggests for a tensor, for each bit width asked, the statistics computed
 * once. Percentile: the seed's tails, cut from each end; they are the seed's 8-bit rule. At 16
 * bits, where rounding noise is 2^16 times smaller, a cut that lowers the power-of-2 clip must pay
 * for itself: the clip kept is the power of 2, from the cut's up to the maximum's, with the least
 * clipping error plus rounding noise (on a histogram of |x|). (At 8 bits that criterion would let
 * one far outlier among 10^5 values cost three bits of every other value; the seed's cut ignores
 * it.) Entropy and MSE: their threshold at the bit width's levels.
 */
export function batchRanges(est: Estimator, s: TensorStats, widths: readonly Bits[]): [number, number][] {
  // Percentile: the tail bins are where the cumulative counts from each end reach cut, i.e. the
  // bins of the ceil(cut)-th smallest and largest values when those are at hand.
  const cut = est.kind === 'percentile' ? (s.count * (100 - est.percentile)) / 100 : 0;
  const e = est.kind === 'percentile' ? s.extremes?.(Math.ceil(cut)) : undefined;
  const [mn, mx] = e ? [e.min, e.max] : s.minMax();
  if (est.kind === 'minmax' || !(mx > mn)) return widths.map(() => [mn, mx]);
  const amax = Math.max(Math.abs(mn), Math.abs(mx));
  const width = amax / (ENTROPY_BINS - 1);
  let abs: Uint32Array | undefined;
  const absHist = () => (abs ??= s.histogram(0, amax, ENTROPY_BINS, true));
  if (est.kind === 'percentile') {
    const k = binScale(mn, mx, 256);
    const [i, j] = e ? [binOf(e.low, mn, k, 256), binOf(e.high, mn, k, 256)] : s.tails(s.histogram(mn, mx, 256, false), cut);
    const at = (b: number) => Math.min(mx, Math.max(mn, mn + (b * (mx - mn)) / 255));
    const tails: [number, number] = [at(i), at(j)];
    return widths.map((bits) => paidCut(tails, mn, mx, bits, absHist, width));
  }
  const signed = mn < 0;
  return widths.map((bits) => {
    const levels = 2 ** (signed ? bits - 1 : bits);
    const t = est.kind === 'entropy' ? klThreshold(absHist(), width, levels) : mseClip(absHist(), width, levels);
    return signed ? [-t, t] : [mn, Math.min(t, mx)];
  });
}

/** The percentile range, or a wider one where the power-of-2 clip its cut costs is not worth it. */
function paidCut(
  tails: [number, number], mn: number, mx: number, bits: Bits, hist: () => Uint32Array, width: number,
): [number, number] {
  if (bits === 8) return tails;
  const [lo, hi] = tails;
  const signed = lo < 0;
  const floor = 2 ** -16; // as pact2Clip
  const from = ceilLog2(Math.max(signed ? Math.max(-lo, hi) : hi, floor));
  const to = ceilLog2(Math.max(signed ? Math.max(-mn, mx) : mx, floor));
  if (from >= to) return tails;
  const levels = 2 ** (signed ? bits - 1 : bits);
  let best = from, bestErr = clipError(hist(), width, 2 ** from, levels);
  for (let k = from + 1; k <= to; k++) {
    const err = clipError(hist(), width, 2 ** k, levels);
    if (err < bestErr) {
      best = k;
      bestErr = err;
    }
  }
  if (best === from) return tails;
  if (best === to) return signed ? [mn, mx] : [lo, mx];
  return signed ? [-(2 ** best), 2 ** best] : [lo, 2 ** best];
}

/** Squared error of a clip c on a histogram of |x| (bin i at i * width): values beyond c are
 *  clipped, the others get the uniform rounding noise of `levels` steps over c, (c/levels)^2/12. */
export function clipError(hist: Uint32Array, width: number, c: number, levels: number): number {
  const noise = (c / levels) ** 2 / 12;
  let err = 0;
  for (let b = 0; b < hist.length; b++) {
    if (!hist[b]) continue;
    const v = b * width;
    err += hist[b] * (v > c ? (v - c) ** 2 : noise);
  }
  return err;
}

/**
 * TensorRT's entropy calibration on a histogram of |x| (bin i centred on i * width): the clip
 * whose quantized distribution Q is closest (KL divergence) to the clipped distribution P, where P
 * folds the mass beyond the clip into its last bin and Q does not. Since PACT2 rounds clips up to
 * powers of 2, only power-of-2 clips are candidates. Bin 0 is left out: zero is exact on every
 * power-of-2 grid, and the spike of zeros after a ReLU would otherwise dominate the divergence and
 * drive the clip down (the smaller the clip, the less that spike is smeared in Q).
 */
export function klThreshold(counts: Uint32Array, width: number, levels: number): number {
  const hist = counts.slice();
  hist[0] = 0;
  const bins = hist.length;
  const amax = width * (bins - 1);
  if (!(amax > 0)) return amax;
  let best = Infinity, bestClip = 2 ** ceilLog2(amax);
  for (let clip = bestClip; clip / width >= levels / 2; clip /= 2) {
    const i = Math.min(bins, Math.round(clip / width) + 1);
    let outliers = 0;
    for (let k = i; k < bins; k++) outliers += hist[k];
    const q = new Float64Array(i);
    for (let g = 0; g < levels; g++) {
      const a = Math.floor((g * i) / levels), b = Math.floor(((g + 1) * i) / levels);
      let mass = 0, nonzero = 0;
      for (let k = a; k < b; k++) { mass += hist[k]; if (hist[k]) nonzero++; }
      for (let k = a; k < b; k++) q[k] = hist[k] ? mass / nonzero : 0;
    }
    let pSum = outliers, qSum = 0;
    for (let k = 0; k < i; k++) { pSum += hist[k]; qSum += q[k]; }
    let kl = 0;
    for (let k = 0; k < i; k++) {
      const p = (hist[k] + (k === i - 1 ? outliers : 0)) / pSum;
      if (!p) continue;
      kl += p * log(p / Math.max(q[k] / qSum, 1e-12));
    }
    if (kl < best) { best = kl; bestClip = clip; }
  }
  return bestClip;
}

/** Power-of-2 clip minimizing clipping error plus uniform rounding noise (step^2 / 12). */
export function mseClip(hist: Uint32Array, width: number, levels: number): number {
  const amax = width * (hist.length - 1);
  const top = ceilLog2(Math.max(amax, 2 ** -16));
  let best = Infinity, bestC = 2 ** top;
  for (let k = top; k >= top - 16; k--) {
    const c = 2 ** k;
    const err = clipError(hist, width, c, levels);
    if (err < best) { best = err; bestC = c; }
  }
  return bestC;
}

/** Bit widths a range is kept for: every point's 8- and 16-bit ranges are estimated together,
 *  so that the bits can be chosen after. Per image and point, the ranges array holds [lo, hi] at
 *  each width, then the tensor's min and max: RANGE_STRIDE numbers. */
export const RANGE_BITS: readonly Bits[] = [8, 16];
export const RANGE_STRIDE = 2 * RANGE_BITS.length + 2;

/**
 * Running average across batches: f = max(1/n, 0.001), clip = (1 - f) * clip + f * batch; or the
 * extremes over all batches (`peak`): for a point whose peaks the task reads, and for 16 bits,
 * where rounding noise is so small that covering every calibration image costs less than clipping
 * some (the same trade as a batch's paid cut, across batches). Beside it, the extremes of the
 * values seen (`seen`), from each batch's min and max.
 */
export class RunningRange {
  n = 0;
  min = 0;
  max = 0;
  seen: [number, number] = [Infinity, -Infinity];
  constructor(readonly peak = false) {}
  update([lo, hi]: [number, number], [mn, mx]: [number, number] = [lo, hi]): void {
    this.n++;
    this.seen = [Math.min(this.seen[0], mn), Math.max(this.seen[1], mx)];
    if (this.peak) {
      this.min = this.n === 1 ? lo : Math.min(this.min, lo);
      this.max = this.n === 1 ? hi : Math.max(this.max, hi);
      return;
    }
    const f = Math.max(1 / this.n, 0.001);
    this.min = (1 - f) * this.min + f * lo;
    this.max = (1 - f) * this.max + f * hi;
  }
}

/** The power-of-2 clip of a range: (-clip2, clip2) when signed, else (0, clip2). */
export function pact2Clip(min: number, max: number): { signed: boolean; clip2: number } {
  const signed = min < 0;
  const m = Math.max(signed ? Math.max(Math.abs(min), Math.abs(max)) : Math.abs(max), 2 ** -16);
  return { signed, clip2: 2 ** ceilLog2(m) };
}

/** scale = 2^bits / clip2 unsigned, 2^(bits-1) / clip2 signed. */
export function tensorQ(min: number, max: number, bits: Bits): TensorQ {
  const { signed, clip2 } = pact2Clip(min, max);
  return { bits, signed, scaleLog2: (signed ? bits - 1 : bits) - floorLog2(clip2) };
}

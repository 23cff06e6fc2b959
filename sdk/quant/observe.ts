/**
 * Float-side statistics of one image: the range every PACT2 point suggests and the per-channel
 * means of every weight layer's output, read by the WASM statistics kernels straight from the
 * float engine's arena as each step completes (no activation is copied). Results go into flat
 * arrays (points and layers in a fixed order) so that they cross a worker boundary as they are.
 */
import type { FloatPlan } from '../engine/float.js';
import type { WasmRuntime } from '../engine/wasm.js';
import { StatsKernels, subsample2Count } from './histogram.js';
import { batchRanges, RANGE_BITS, RANGE_STRIDE, type Estimator } from './ranges.js';

/** Which tensor to average per layer, and how it is laid out: [outer, channels, inner]. */
export interface MeanTarget {
  layer: string;
  tensor: string;
  channels: number;
  /** Elements per channel per outer index (H*W for NCHW, 1 for [.., N] Gemm outputs). */
  inner: number;
}

/** Where each target's channels start in a flat array of all targets' channels, and its length. */
export function meanOffsets(targets: readonly MeanTarget[]): { offsets: number[]; length: number } {
  const offsets: number[] = [];
  let length = 0;
  for (const t of targets) {
    offsets.push(length);
    length += t.channels;
  }
  return { offsets, length };
}

/**
 * The devkit subsamples 4-D activations with stride 2 at a random offset before binning; here the
 * offset of every (image, point) comes from a hash of the seed, the image's index and the point's,
 * so it does not depend on which worker sees the image.
 */
export interface Subsample {
  seed: number;
  shapeOf(tensor: string): number[];
}

function subsampleOffsets(seed: number, image: number, point: number): [number, number] {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(image + 1, 0xc2b2ae35) ^ Math.imul(point + 1, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h ^= h >>> 13;
  return [h & 1, (h >>> 1) & 1];
}

export interface Observation {
  /** Out: per point i, from RANGE_STRIDE * i, [lo, hi] at each of RANGE_BITS, then its min and
   *  max (points the plan computes, see `observed`); `image`, the image's index in the
   *  calibration, seeds the subsample's offsets. */
  ranges?: { values: Float64Array; image: number };
  /** Out: per-channel means of every target, at meanOffsets. */
  means?: Float64Array;
  /** Sees every observed PACT2 point's float values while they are in the arena. */
  onPoint?: (index: number, name: string, values: Float32Array) => void;
  /** Adds the milliseconds spent in the statistics kernels. */
  spent?: { ranges: number; means: number };
}

export class FloatObserver {
  /** The statistics kernels on the float engine's WASM instance. */
  readonly stats: StatsKernels;
  private readonly pointIndex = new Map<string, number>();
  private readonly targets = new Map<string, { t: MeanTarget; offset: number }[]>();
  /** Indices of the points that are runtime tensors of the plan (the others never get a range). */
  readonly observed: number[] = [];
  private readonly peaks: Set<number>;

  constructor(
    private readonly plan: FloatPlan,
    rt: WasmRuntime,
    points: readonly string[],
    meanTargets: readonly MeanTarget[],
    private readonly estimator: Estimator,
    private readonly subsample?: Subsample,
    /** Indices of the points whose range is their min and max whatever the estimator. */
    peaks: readonly number[] = [],
  ) {
    this.peaks = new Set(peaks);
    this.stats = new StatsKernels(rt, Math.max(0, ...meanTargets.map((t) => t.channels)));
    points.forEach((p, i) => {
      if (!plan.location(p) || this.pointIndex.has(p)) return;
      this.pointIndex.set(p, i);
      this.observed.push(i);
    });
    const { offsets } = meanOffsets(meanTargets);
    meanTargets.forEach((t, k) => {
      const list = this.targets.get(t.tensor) ?? [];
      list.push({ t, offset: offsets[k] });
      this.targets.set(t.tensor, list);
    });
  }

  /** A point's place in the float plan's arena (shared with other tensors between steps). */
  view(name: string): Float32Array {
    return this.plan.view(name);
  }

  /** Run one image through the float model, filling what `o` asks for. */
  observe(feeds: Record<string, Float32Array>, o: Observation): void {
    const seen = new Set<string>();
    const visit = (name: string) => {
      const loc = this.plan.location(name);
      if (!loc || seen.has(name)) return;
      seen.add(name);
      const i = this.pointIndex.get(name);
      if (i !== undefined) {
        o.onPoint?.(i, name, this.plan.view(name));
        if (o.ranges) {
          const t0 = performance.now();
          const shape = this.subsample?.shapeOf(name);
          const sub = shape?.length === 4 ? shape : undefined;
          const [oy, ox] = sub ? subsampleOffsets(this.subsample!.seed, o.ranges.image, i) : [0, 0];
          // Every estimator reads the tensor's min and max first: kept as its extremes.
          let extremes: [number, number] | undefined;
          const ranges = batchRanges(this.peaks.has(i) ? { kind: 'minmax' } : this.estimator, {
            count: sub ? subsample2Count(sub[0] * sub[1], sub[2], sub[3], oy, ox) : loc.length,
            minMax: () => (extremes = this.stats.minMax(loc.ptr, loc.length)),
            extremes: sub ? undefined : (m) => {
              const e = this.stats.extremes(loc.ptr, loc.length, m);
              if (e) extremes = [e.min, e.max];
              return e;
            },
            histogram: (lo, hi, bins, absolute) => sub
              ? this.stats.histogramSub2(loc.ptr, sub[0] * sub[1], sub[2], sub[3], oy, ox, lo, hi, bins, absolute)
              : this.stats.histogram(loc.ptr, loc.length, lo, hi, bins, absolute),
            tails: (hist, cut) => this.stats.tailsOf(hist, cut),
          }, RANGE_BITS);
          const [mn, mx] = extremes ?? this.stats.minMax(loc.ptr, loc.length);
          o.ranges.values.set([...ranges.flat(), mn, mx], RANGE_STRIDE * i);
          if (o.spent) o.spent.ranges += performance.now() - t0;
        }
      }
      if (!o.means) return;
      const t0 = performance.now();
      for (const { t, offset } of this.targets.get(name) ?? []) {
        const outer = loc.length / (t.channels * t.inner);
        this.stats.channelSums(loc.ptr, outer, t.channels, t.inner, o.means.subarray(offset, offset + t.channels));
        for (let c = offset; c < offset + t.channels; c++) o.means[c] /= outer * t.inner;
      }
      if (o.spent) o.spent.means += performance.now() - t0;
    };
    runVisiting(this.plan, feeds, visit);
  }
}

/** Run the plan, calling `visit` with each tensor's name as soon as it is written: the inputs,
 *  then every step's outputs (readable through plan.location until later steps reuse the memory). */
export function runVisiting(plan: FloatPlan, feeds: Record<string, Float32Array>, visit: (name: string) => void): Record<string, Float32Array> {
  // Inputs are in the arena once run() has copied them in, i.e. by the first step.
  let inputsSeen = false;
  return plan.run(feeds, (node) => {
    if (!inputsSeen) {
      inputsSeen = true;
      Object.keys(feeds).forEach(visit);
    }
    node.outputs.forEach(visit);
  });
}

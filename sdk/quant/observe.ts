/**
 * Float-side statistics of one image: the range every PACT2 point suggests and the per-channel
 * means of every weight layer's output, read by the WASM statistics kernels straight from the
 * float engine's arena as each step completes (no activation is copied). Results go into flat
 * arrays (points and layers in a fixed order) so that they cross a worker boundary as they are.
 */
import type { FloatPlan } from '../engine/float.js';
import type { WasmRuntime } from '../engine/wasm.js';
import { StatsKernels } from './histogram.js';
import { batchRange, type Estimator } from './ranges.js';

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

export interface Observation {
  /** Out: [lo, hi] of point i at 2i, 2i+1 (points the plan computes, see `observed`). */
  ranges?: Float64Array;
  /** Out: per-channel means of every target, at meanOffsets. */
  means?: Float64Array;
  /** Sees every observed PACT2 point's float values while they are in the arena. */
  onPoint?: (index: number, name: string, values: Float32Array) => void;
  /** Adds the milliseconds spent in the statistics kernels. */
  spent?: { ranges: number; means: number };
}

export class FloatObserver {
  private readonly stats: StatsKernels;
  private readonly pointIndex = new Map<string, number>();
  private readonly targets = new Map<string, { t: MeanTarget; offset: number }[]>();
  /** Indices of the points that are runtime tensors of the plan (the others never get a range). */
  readonly observed: number[] = [];

  constructor(
    private readonly plan: FloatPlan,
    rt: WasmRuntime,
    points: readonly string[],
    meanTargets: readonly MeanTarget[],
    private readonly estimator: Estimator,
  ) {
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
          const [lo, hi] = batchRange(this.estimator, {
            count: loc.length,
            minMax: () => this.stats.minMax(loc.ptr, loc.length),
            histogram: (lo, hi, bins, absolute) => this.stats.histogram(loc.ptr, loc.length, lo, hi, bins, absolute),
            tails: (hist, cut) => this.stats.tailsOf(hist, cut),
          });
          o.ranges[2 * i] = lo;
          o.ranges[2 * i + 1] = hi;
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
    // Inputs are in the arena once run() has copied them in, i.e. by the first step.
    let inputsSeen = false;
    this.plan.run(feeds, (node) => {
      if (!inputsSeen) {
        inputsSeen = true;
        Object.keys(feeds).forEach(visit);
      }
      node.outputs.forEach(visit);
    });
  }
}

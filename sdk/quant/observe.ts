/**
 * Float-side statistics of one image: the range every PACT2 point suggests and the per-channel
 * means of every weight layer's output, read by the WASM statistics kernels straight from the
 * float engine's arena as each step completes.
 */
import type { FloatPlan } from '../engine/float.js';
import type { WasmRuntime } from '../engine/wasm.js';
import { StatsKernels } from './histogram.js';
import { batchRange, type Estimator } from './ranges.js';

export interface ImageStats {
  ranges: Map<string, [number, number]>;
  /** Per layer (node name): per-channel means of the observed output. */
  means: Map<string, Float64Array>;
}

/** Which tensor to average per layer, and how it is laid out: [outer, channels, inner]. */
export interface MeanTarget {
  layer: string;
  tensor: string;
  channels: number;
  /** Elements per channel per outer index (H*W for NCHW, 1 for [.., N] Gemm outputs). */
  inner: number;
}

export class FloatObserver {
  private readonly stats: StatsKernels;
  private readonly pointSet: Set<string>;
  private readonly targets = new Map<string, MeanTarget[]>();

  constructor(
    private readonly plan: FloatPlan,
    rt: WasmRuntime,
    points: string[],
    meanTargets: MeanTarget[],
    private readonly estimator: Estimator,
  ) {
    this.stats = new StatsKernels(rt, Math.max(0, ...meanTargets.map((t) => t.channels)));
    this.pointSet = new Set(points);
    for (const t of meanTargets) {
      const list = this.targets.get(t.tensor) ?? [];
      list.push(t);
      this.targets.set(t.tensor, list);
    }
  }

  /** Run one image; outputs of the float model are returned with its statistics. `onPoint`
   *  sees every PACT2 point's float values while they are in the arena. */
  observe(
    feeds: Record<string, Float32Array>, onPoint?: (name: string, values: Float32Array) => void,
  ): { outputs: Record<string, Float32Array>; stats: ImageStats } {
    const ranges = new Map<string, [number, number]>();
    const means = new Map<string, Float64Array>();
    const visit = (name: string) => {
      const loc = this.plan.location(name);
      if (!loc) return;
      if (this.pointSet.has(name) && !ranges.has(name)) {
        onPoint?.(name, this.plan.view(name));
        ranges.set(name, batchRange(this.estimator, {
          count: loc.length,
          minMax: () => this.stats.minMax(loc.ptr, loc.length),
          histogram: (lo, hi, bins, absolute) => this.stats.histogram(loc.ptr, loc.length, lo, hi, bins, absolute),
          tails: (hist, cut) => this.stats.tailsOf(hist, cut),
        }));
      }
      for (const t of this.targets.get(name) ?? []) {
        const outer = loc.length / (t.channels * t.inner);
        const sums = this.stats.channelSums(loc.ptr, outer, t.channels, t.inner);
        for (let c = 0; c < sums.length; c++) sums[c] /= outer * t.inner;
        means.set(t.layer, sums);
      }
    };
    const outputs = runVisiting(this.plan, feeds, visit);
    return { outputs, stats: { ranges, means } };
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

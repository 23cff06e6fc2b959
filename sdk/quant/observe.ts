/**
 * Float-side statistics of one image: the range every PACT2 point suggests and the per-channel
 * means of every weight layer's output, read by the WASM statistics kernels straight from the
 * float engine's arena as each step completes.
 */
import type { FloatPlan } from '../engine/float.js';
import type { WasmRuntime } from '../engine/wasm.js';
import { StatsKernels, subsample2Count } from './histogram.js';
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

/**
 * The devkit subsamples 4-D activations with stride 2 at a random offset before binning; here the
 * offset of every (image, point) comes from a hash of the seed, the image's index and the point's,
 * so it does not depend on which worker sees the image.
 */
export interface Subsample {
  seed: number;
  shapeOf(tensor: string): number[];
}

function offsets(seed: number, image: number, point: number): [number, number] {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(image + 1, 0xc2b2ae35) ^ Math.imul(point + 1, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h ^= h >>> 13;
  return [h & 1, (h >>> 1) & 1];
}

export class FloatObserver {
  private readonly stats: StatsKernels;
  private readonly pointSet: Set<string>;
  private readonly pointIndex: Map<string, number>;
  private readonly targets = new Map<string, MeanTarget[]>();

  constructor(
    private readonly plan: FloatPlan,
    rt: WasmRuntime,
    points: string[],
    meanTargets: MeanTarget[],
    private readonly estimator: Estimator,
    private readonly subsample?: Subsample,
  ) {
    this.stats = new StatsKernels(rt, Math.max(0, ...meanTargets.map((t) => t.channels)));
    this.pointSet = new Set(points);
    this.pointIndex = new Map(points.map((p, i) => [p, i]));
    for (const t of meanTargets) {
      const list = this.targets.get(t.tensor) ?? [];
      list.push(t);
      this.targets.set(t.tensor, list);
    }
  }

  /**
   * Run image number `image`; the float model's outputs come with its statistics: the points'
   * ranges when `ranges` is set (the first pass) and the mean targets' per-channel means. `onPoint`
   * sees every PACT2 point's float values while they are in the arena.
   */
  observe(
    feeds: Record<string, Float32Array>,
    o: { image: number; ranges: boolean; onPoint?: (name: string, values: Float32Array) => void },
  ): { outputs: Record<string, Float32Array>; stats: ImageStats } {
    const ranges = new Map<string, [number, number]>();
    const means = new Map<string, Float64Array>();
    const visit = (name: string) => {
      const loc = this.plan.location(name);
      if (!loc) return;
      if (this.pointSet.has(name)) o.onPoint?.(name, this.plan.view(name));
      if (o.ranges && this.pointSet.has(name) && !ranges.has(name)) {
        const shape = this.subsample?.shapeOf(name);
        const sub = shape?.length === 4 ? shape : undefined;
        const [oy, ox] = sub ? offsets(this.subsample!.seed, o.image, this.pointIndex.get(name)!) : [0, 0];
        ranges.set(name, batchRange(this.estimator, {
          count: sub ? subsample2Count(sub[0] * sub[1], sub[2], sub[3], oy, ox) : loc.length,
          minMax: () => this.stats.minMax(loc.ptr, loc.length),
          histogram: (lo, hi, bins, absolute) => sub
            ? this.stats.histogramSub2(loc.ptr, sub[0] * sub[1], sub[2], sub[3], oy, ox, lo, hi, bins, absolute)
            : this.stats.histogram(loc.ptr, loc.length, lo, hi, bins, absolute),
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

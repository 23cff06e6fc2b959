/**
 * The per-image work of a calibration: what one worker does, in the calling thread or in a
 * worker thread / Web Worker (sdk/quant/protocol.ts). A worker holds its own float and
 * fixed-point engines on its own WASM instance and returns, per image, flat arrays of partial
 * statistics; the coordinator (sdk/calibration.ts) merges them in image order. Nothing a worker
 * computes for an image depends on which worker computes it or on what it computed before, so
 * that the result is the same for 1 or N workers.
 *
 * LocalWorker puts a queue in front of a CalibrationWorker: requests run one at a time in the
 * order they arrive, each image's loading (decoding, preprocessing) starts as soon as its
 * request arrives so that it overlaps the work queued before it, and a bias-calibration request
 * waits until the biases it needs (a version: the number of updates before its batch) are set.
 * It keeps the images it loads in pass 1, decoded, within `WorkerSetup.cacheBytes`, for the
 * later passes and for the repeats of an image within pass 1 (the coordinator names each image's
 * cache slot, the pass-1 index of its first occurrence, and sends it to the worker that kept it).
 */
import { FixedPlan, type MeansOf } from '../engine/fixed.js';
import { FloatPlan } from '../engine/float.js';
import { WasmRuntime } from '../engine/wasm.js';
import type { Feeds, Model } from '../model.js';
import { qCode } from '../ops/fixed.js';
import { FloatObserver, meanOffsets, type MeanTarget } from './observe.js';
import { RANGE_STRIDE, type Estimator } from './ranges.js';
import { qRange, type QuantSpec } from '../device/spec.js';

/** What every worker is given once. Plain data, structured-cloneable. */
export interface WorkerSetup {
  /** PACT2 points, in the order of the ranges and SQNR arrays. */
  points: string[];
  /** One per weight layer, in the order of the means arrays and of the bias vector. */
  targets: MeanTarget[];
  estimator: Estimator;
  /** 'output' (TIDL): each layer's stored output after its activation; 'accumulator' (devkit):
   *  its own output before the activation. */
  meansOf: MeansOf;
  /** Seed of the devkit's stride-2 subsample of 4-D activations, when subsampling. */
  subsampleSeed?: number;
  /** Indices of the points ranged by their min and max (model outputs and what feeds them). */
  peaks: number[];
  /** Bytes of decoded images a worker keeps from pass 1 for the later passes. */
  cacheBytes: number;
  /** Bytes of float point tensors a worker keeps for the images compared again and again with
   *  other specs (CompareRequest.keep). */
  keepBytes: number;
}

/** Pass 1's answer for an image. */
export interface Ranged {
  /** RANGE_STRIDE numbers per point (see Observation.ranges). */
  ranges: Float64Array;
  /** The float per-channel means, at meanOffsets(targets), when asked for: they do not change
   *  between passes, so that bias calibration need not run the float model for them again. */
  means?: Float64Array;
  /** Whether the worker kept the image decoded for the later passes. */
  cached: boolean;
}

/** What a later pass asks of the fixed-point engine for an image (`measure`)... */
export interface MeasureRequest {
  /** Per-channel means of every weight layer's fixed-point output (bias calibration). */
  means: boolean;
}

/** ...and of the float engine on the same image (`compare`, right after its `measure`). */
export interface CompareRequest {
  /** The float per-channel means (bias calibration, where pass 1 did not keep them). */
  means: boolean;
  /** Per-point SQNR sums against the fixed-point tensors of the image (the last pass). */
  sqnr: boolean;
  /** With sqnr and not means: the image's key when it is compared again under other specs (mixed
   *  precision's sensitivity pass). Its float point tensors, which do not change, are kept (within
   *  WorkerSetup.keepBytes) and read instead of running the float model again; a request without
   *  a key drops what was kept. */
  keep?: number;
}

export interface Measured {
  /** At meanOffsets(targets). */
  meansFixed?: Float64Array;
}

export interface Compared {
  /** At meanOffsets(targets). */
  meansFloat?: Float64Array;
  /** Per observed point i: sum f^2 at 2i and sum (f - q)^2 at 2i+1. */
  sqnr?: Float64Array;
  /** Per observed point i, what its format's range cuts of the float values: how many lie
   *  beyond it at 2i, their squared excess at 2i+1 (with sqnr, without keep). */
  clip?: Float64Array;
}

/** Milliseconds a worker spent per phase. */
export interface WorkerTimings {
  /** Idle: waiting for an image to be loaded, and for the biases of its batch. */
  waitImage: number;
  waitBias: number;
  /** The float model's kernels (without the statistics read from its arena). */
  float: number;
  /** Range statistics (min/max, tails, histograms) on the float tensors, pass 1. */
  ranges: number;
  /** Per-channel sums of the float tensors (bias calibration). */
  means: number;
  /** The fixed-point engine, with its per-channel sums. */
  fixed: number;
  sqnr: number;
  /** Images processed, once per pass. */
  images: number;
  /** Images taken from the worker's cache instead of being loaded again (later passes, and an
   *  image's repeats within pass 1). */
  reused: number;
}

export function noTimings(): WorkerTimings {
  return { waitImage: 0, waitBias: 0, float: 0, ranges: 0, means: 0, fixed: 0, sqnr: 0, images: 0, reused: 0 };
}

export class CalibrationWorker {
  readonly timings = noTimings();
  private fixed?: { plan: FixedPlan; spec: QuantSpec };
  /** Where the fixed-point plan's memory starts: a new spec's plan replaces the last one there. */
  private fixedMark?: number;
  private readonly means: { offsets: number[]; length: number };
  /** The feeds of the last image measured, which the fixed-point tensors hold, for `compare`. */
  private measured?: Record<string, Float32Array>;
  /** Float point tensors by image key (CompareRequest.keep), and their bytes; full once an image
   *  did not fit. */
  private readonly kept = new Map<number, { index: number; name: string; values: Float32Array }[]>();
  private keptBytes = 0;
  private keepFull = false;

  private constructor(
    private readonly model: Model,
    private readonly setup: WorkerSetup,
    private readonly rt: WasmRuntime,
    private readonly observer: FloatObserver,
  ) {
    this.means = meanOffsets(setup.targets);
  }

  /** Float and fixed-point engines share one WASM instance, so that the SQNR kernel reads both. */
  static async create(model: Model, setup: WorkerSetup): Promise<CalibrationWorker> {
    const rt = await WasmRuntime.create();
    const { graph, inferred } = model.prepared(1);
    // The observer reads every point and mean target right after its step: none may be fused
    // into the activation after it (the devkit's targets are layers' own outputs).
    const plan = new FloatPlan(rt, graph, inferred, { observe: [...setup.points, ...setup.targets.map((t) => t.tensor)] });
    const subsample = setup.subsampleSeed === undefined ? undefined : { seed: setup.subsampleSeed, shapeOf: (t: string) => inferred.values.get(t)!.shape };
    return new CalibrationWorker(model, setup, rt, new FloatObserver(plan, rt, setup.points, setup.targets, setup.estimator, subsample, setup.peaks));
  }

  /** Indices of the points the float model computes: the only ones with ranges and SQNR. */
  get observed(): number[] {
    return this.observer.observed;
  }

  /** Pass 1: the ranges each point suggests for image number `image` (RANGE_STRIDE numbers per
   *  point, see Observation.ranges), and its float per-channel means if asked. */
  ranges(feeds: Feeds, image: number, withMeans: boolean): { ranges: Float64Array; means?: Float64Array } {
    const ranges = new Float64Array(RANGE_STRIDE * this.setup.points.length);
    const means = withMeans ? new Float64Array(this.means.length) : undefined;
    const spent = { ranges: 0, means: 0 };
    const t0 = performance.now();
    this.observer.observe(this.model.feedsToRecord(feeds).record, { ranges: { values: ranges, image }, means, spent });
    this.timings.float += performance.now() - t0 - spent.ranges - spent.means;
    this.timings.ranges += spent.ranges;
    this.timings.means += spent.means;
    this.timings.images++;
    return means ? { ranges, means } : { ranges };
  }

  /** After pass 1: the fixed-point engine for the calibrated formats and frozen weights. */
  setSpec(spec: QuantSpec): void {
    const { graph, inferred } = this.model.prepared(1);
    if (this.fixedMark === undefined) this.fixedMark = this.rt.used;
    else this.rt.release(this.fixedMark);
    this.fixed = { plan: new FixedPlan(this.rt, graph, inferred, spec, { keep: this.setup.points }), spec };
  }

  /** Every weight layer's float bias, concatenated in target order. */
  setBiases(biases: Float32Array): void {
    const fixed = this.fixedPlan().plan;
    this.setup.targets.forEach((t, k) => {
      const o = this.means.offsets[k];
      fixed.setBias(t.layer, biases.subarray(o, o + t.channels));
    });
  }

  /** Bias calibration and SQNR, first half: the image through the fixed-point engine (its
   *  tensors then stay readable for `compare`). */
  measure(image: Feeds, req: MeasureRequest): Measured {
    const { plan: fixed } = this.fixedPlan();
    const feeds = this.model.feedsToRecord(image).record;
    this.measured = undefined;
    const out: Measured = {};
    const t0 = performance.now();
    if (req.means) {
      const q = fixed.runWithMeans(feeds, this.setup.meansOf).means;
      out.meansFixed = new Float64Array(this.means.length);
      this.setup.targets.forEach((t, k) => out.meansFixed!.set(q.get(t.layer)!, this.means.offsets[k]));
    } else {
      fixed.run(feeds);
    }
    this.timings.fixed += performance.now() - t0;
    this.timings.images++;
    this.measured = feeds;
    return out;
  }

  /** Second half, for the image `measure` ran last: the float engine, its means and the SQNR sums
   *  against the fixed-point tensors. */
  compare(req: CompareRequest): Compared {
    const { plan: fixed, spec } = this.fixedPlan();
    const feeds = this.measured;
    if (!feeds) throw new Error('calibration worker: compare before measure');
    const keyed = req.keep !== undefined && req.sqnr && !req.means;
    if (!keyed && (this.kept.size || this.keepFull)) {
      this.kept.clear();
      this.keptBytes = 0;
      this.keepFull = false;
    }
    const out: Compared = {};
    if (req.means) out.meansFloat = new Float64Array(this.means.length);
    const sums = req.sqnr ? new Float64Array(2 * this.setup.points.length) : undefined;
    // What the formats cut feeds the last pass's diagnostics, not mixed precision's comparisons.
    const clip = req.sqnr && !keyed ? new Float64Array(2 * this.setup.points.length) : undefined;
    let sqnrMs = 0;
    const pointSums = (i: number, name: string, f: Float32Array) => {
      const t1 = performance.now();
      const q = spec.tensors[name];
      const step = 2 ** -q.scaleLog2;
      [sums![2 * i], sums![2 * i + 1]] = this.observer.stats.sqnrSums(f.byteOffset, fixed.tensor(name).byteOffset, qCode(q), f.length, step);
      if (clip) {
        // Values beyond half a step past the format's extremes saturate.
        const [lo, hi] = qRange(q.bits, q.signed);
        [clip[2 * i], clip[2 * i + 1]] = this.observer.stats.clipError(f.byteOffset, f.length, (lo - 0.5) * step, (hi + 0.5) * step);
      }
      sqnrMs += performance.now() - t1;
    };
    const kept = keyed ? this.kept.get(req.keep!) : undefined;
    if (kept) {
      // The float plan is idle: each point's kept values go back to its place in the arena, where
      // the kernels read them, one point at a time (places are shared between tensors).
      for (const { index, name, values } of kept) {
        const f = this.observer.view(name);
        f.set(values);
        pointSums(index, name, f);
      }
    } else {
      let keep = keyed && !this.keepFull ? [] as { index: number; name: string; values: Float32Array }[] : undefined;
      let bytes = 0;
      const spent = { ranges: 0, means: 0 };
      const t0 = performance.now();
      this.observer.observe(feeds, {
        means: out.meansFloat,
        spent,
        onPoint: sums && ((i, name, f) => {
          pointSums(i, name, f);
          if (!keep) return;
          bytes += f.byteLength;
          if (this.keptBytes + bytes > this.setup.keepBytes) {
            keep = undefined;
            this.keepFull = true;
          } else {
            keep.push({ index: i, name, values: f.slice() });
          }
        }),
      });
      this.timings.float += performance.now() - t0 - spent.means - sqnrMs;
      this.timings.means += spent.means;
      if (keep) {
        this.kept.set(req.keep!, keep);
        this.keptBytes += bytes;
      }
    }
    this.timings.sqnr += sqnrMs;
    if (sums) out.sqnr = sums;
    if (clip) out.clip = clip;
    return out;
  }

  private fixedPlan(): { plan: FixedPlan; spec: QuantSpec } {
    if (!this.fixed) throw new Error('calibration worker: no quantization spec yet');
    return this.fixed;
  }
}

/** Turns what a worker is sent for an image (feeds, a file path, a decoded bitmap...) into feeds:
 *  a function, or two stages when what the costly one gives is smaller than the feeds (8-bit
 *  pixels against float tensors), which is then what a worker keeps between passes. */
export type Loader<I> = ((item: I) => Promise<Feeds> | Feeds) | StagedLoader<I, any>;

export interface StagedLoader<I, D> {
  /** The costly stage (decoding, resizing). */
  decode(item: I): Promise<D> | D;
  /** The cheap one: the same feeds from the same decoded value, every time. */
  feeds(decoded: D): Feeds;
  bytes(decoded: D): number;
}

function staged<I>(load: Loader<I>): StagedLoader<I, unknown> {
  if (typeof load !== 'function') return load;
  const bytes = (f: Feeds) => (f instanceof Float32Array ? f.byteLength : Object.values(f).reduce((n, t) => n + t.byteLength, 0));
  return { decode: load, feeds: (f) => f as Feeds, bytes: (f) => bytes(f as Feeds) };
}

/** How a request uses the cache of decoded images: pass 1 fills it, the last pass empties it. */
type CacheUse = 'fill' | 'read' | 'last';

/**
 * The coordinator's view of a worker, in this thread (LocalWorker) or behind messages
 * (RemoteWorker). Requests for images are answered in the order they were made.
 */
export interface WorkerHandle<I> {
  /** Indices of the points the float model computes (the same for every worker). */
  readonly observed: number[];
  /** Pass 1 for image number `image` (its index in the calibration); `means`: with its float
   *  per-channel means; `slot`: where the decoded image is kept (`image`, or the index of an
   *  earlier occurrence of the same image, which is then read from the cache if kept). */
  ranges(item: I, image: number, means: boolean, slot: number): Promise<Ranged>;
  setSpec(spec: QuantSpec): Promise<void>;
  /** The biases after `version` updates; measure requests for that version wait for them. */
  setBiases(version: number, biases: Float32Array): void;
  /** A later pass for the image kept in cache slot `image` (see `ranges`) through the fixed-point
   *  engine; `last`: no later request reads that slot. */
  measure(item: I, image: number, version: number, req: MeasureRequest, last: boolean): Promise<Measured>;
  /** The float engine on the image of the measure request made just before, to this worker. */
  compare(req: CompareRequest): Promise<Compared>;
  /** Finish the queued work and stop; resolves with the worker's timings. */
  close(): Promise<WorkerTimings>;
  /** Stop now (after a failure), dropping queued work. */
  abort(): Promise<void>;
}

export class LocalWorker<I> implements WorkerHandle<I> {
  private queue: Promise<unknown> = Promise.resolve();
  private version = 0;
  private readonly waiting: { version: number; resolve: () => void }[] = [];
  private readonly load: StagedLoader<I, unknown>;
  private readonly cache = new Map<number, unknown>();
  /** Pass-1 decodings queued and not yet run, by cache slot. */
  private readonly decoding = new Map<number, Promise<unknown>>();
  private cached = 0;

  constructor(private readonly worker: CalibrationWorker, load: Loader<I>, private readonly cacheBytes: number) {
    this.load = staged(load);
  }

  get observed(): number[] {
    return this.worker.observed;
  }

  ranges(item: I, image: number, means: boolean, slot: number): Promise<Ranged> {
    return this.enqueue(item, slot, 'fill', (feeds, cached) => ({ ...this.worker.ranges(feeds, image, means), cached }));
  }

  async setSpec(spec: QuantSpec): Promise<void> {
    this.worker.setSpec(spec);
  }

  setBiases(version: number, biases: Float32Array): void {
    this.worker.setBiases(biases);
    this.version = version;
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      if (this.waiting[i].version <= version) this.waiting.splice(i, 1)[0].resolve();
    }
  }

  measure(item: I, image: number, version: number, req: MeasureRequest, last: boolean): Promise<Measured> {
    return this.enqueue(item, image, last ? 'last' : 'read', async (feeds) => {
      if (this.version < version) {
        const t0 = performance.now();
        await new Promise<void>((resolve) => this.waiting.push({ version, resolve }));
        this.worker.timings.waitBias += performance.now() - t0;
      }
      return this.worker.measure(feeds, req);
    });
  }

  compare(req: CompareRequest): Promise<Compared> {
    const run = this.queue.then(() => this.worker.compare(req));
    this.queue = run.catch(() => {});
    return run;
  }

  async close(): Promise<WorkerTimings> {
    await this.queue;
    return this.worker.timings;
  }

  /** Work still queued here finishes or waits unobserved; nothing runs outside this thread. */
  async abort(): Promise<void> {}

  private enqueue<T>(item: I, slot: number, use: CacheUse, work: (feeds: Feeds, cached: boolean) => T | Promise<T>): Promise<T> {
    // A repeat of an image within pass 1 may arrive before its first occurrence has run: it
    // shares that decoding, which the first occurrence keeps or not.
    const kept = this.cache.get(slot);
    const shared = kept === undefined ? this.decoding.get(slot) : undefined;
    const loaded = kept !== undefined ? Promise.resolve(kept) : shared ?? Promise.resolve().then(() => this.load.decode(item));
    loaded.catch(() => {}); // its error is reported when its turn comes
    const owner = kept === undefined && !shared;
    if (owner && use === 'fill') this.decoding.set(slot, loaded);
    const run = this.queue.then(async () => {
      const t0 = performance.now();
      const decoded = await loaded.catch((e: unknown) => {
        if (owner) this.decoding.delete(slot);
        throw e;
      });
      this.worker.timings.waitImage += performance.now() - t0;
      if (!owner) this.worker.timings.reused++;
      if (owner && use === 'fill' && this.cached + this.load.bytes(decoded) <= this.cacheBytes) {
        this.cache.set(slot, decoded);
        this.cached += this.load.bytes(decoded);
      }
      if (owner) this.decoding.delete(slot);
      const cached = this.cache.has(slot);
      if (use === 'last' && this.cache.delete(slot)) this.cached -= this.load.bytes(decoded);
      return work(this.load.feeds(decoded), cached);
    });
    this.queue = run.catch(() => {});
    return run;
  }
}

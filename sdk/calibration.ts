/** calibrate() and the Calibration it returns: the public face of sdk/quant and sdk/export. */
import { exportCalibrated } from './export/calibrated.js';
import { exportQdq, type QdqRounding } from './export/qdq.js';
import { buildProvenance, checkModel, type CalibrationSource } from './export/provenance.js';
import { buildTable, checkTableHash, integersSection, type CalibrationTable } from './export/table.js';
import { tidlQuantParams, tidlQuantParamsType, toTextFormat } from './export/tidl-proto.js';
import type { SizedSpec } from './data/preprocess.js';
import { fail } from './errors.js';
import { check, checkBatch, checkCallbacks, checkIterable, options as optionsOf } from './guard.js';
import { Model, type Feeds } from './model.js';
import {
  CalibrationState, resolveOptions, splitImages, type CalibrateOptions, type LayerState, type OutputRanges, type Preset, type ResolvedOptions, type Sample,
  type Samples,
} from './quant/calibrate.js';
import { FixedPlan } from './engine/fixed.js';
import { numel } from './graph/ir.js';
import { weightFacts } from './ops/index.js';
import { diagnose, type PointError } from './quant/diagnose.js';
import { chooseMixedPrecision, type MixedPrecisionReport, type Raised } from './quant/mixed.js';
import { meanOffsets, type MeanTarget } from './quant/observe.js';
import { RANGE_STRIDE } from './quant/ranges.js';
import {
  CalibrationWorker, LocalWorker, noTimings, type Compared, type CompareRequest, type Measured, type WorkerHandle, type WorkerSetup, type WorkerTimings,
} from './quant/worker.js';
import type { BiasMode, Bits, QuantSpec } from './device/spec.js';
import type { QuantizedWeights } from './quant/weights.js';
import { sqnrDb } from './util/math.js';

export class Calibration {
  private readonly plans = new Map<number, Promise<FixedPlan>>();

  constructor(
    readonly model: Model,
    readonly state: CalibrationState,
    readonly spec: QuantSpec,
    private readonly weights: Map<string, QuantizedWeights>,
    readonly table: CalibrationTable,
    /** Where the time went (absent for a calibration loaded from a table). */
    readonly timings?: CalibrationTimings,
  ) {}

  /** The preprocessing the calibration was made with (calibration.json's provenance), if known. */
  get preprocessing(): SizedSpec | undefined {
    return (this.table.provenance?.preprocessing as SizedSpec | null) ?? undefined;
  }

  /** The fixed-point simulation of the device: float feeds in, dequantized outputs out. */
  async run(feeds: Feeds): Promise<Record<string, Float32Array>> {
    const { record, batch } = this.model.feedsToRecord(feeds);
    return (await this.fixedPlan(batch)).run(record);
  }

  /** The fixed-point engine for a batch size, made once and reused. */
  fixedPlan(batch: number): Promise<FixedPlan> {
    checkBatch(batch, this.model, 'fixedPlan');
    let p = this.plans.get(batch);
    if (!p) {
      p = FixedPlan.create(this.model, batch, this.spec);
      this.plans.set(batch, p);
    }
    return p;
  }

  /** QDQ ONNX: what ONNX Runtime runs and TIDL imports as a pre-quantized model. `rounding:
   *  'device'` makes ONNX Runtime round ties up as the device does (not for TIDL import). */
  toQdqOnnx(options?: { rounding?: QdqRounding }): Uint8Array {
    const rounding = optionsOf(options, 'toQdqOnnx').rounding;
    check(rounding === undefined || rounding === 'onnx' || rounding === 'device', 'toQdqOnnx', 'rounding must be "onnx" or "device"');
    return exportQdq(this.state, this.spec, this.weights, rounding);
  }

  /** The folded float model with PACT2 clips and calibrated weights and biases. */
  toCalibratedOnnx(): Uint8Array {
    return exportCalibrated(this.state, this.spec, this.weights);
  }

  /** TIDL's quantization parameters file (prototxt) with these ranges and biases: point
   *  `advanced_options:quant_params_proto_path` at it and TIDL uses them instead of calibrating. */
  toTidlQuantParams(): string {
    const nodes = this.state.graph.nodes;
    const producers = new Map(nodes.flatMap((n) => n.outputs.map((o) => [o, n.op] as const)));
    const inFloat = new Set(nodes.filter((n) => this.state.floatNodes.has(n.name)).flatMap((n) => n.outputs));
    return toTextFormat(tidlQuantParamsType(), tidlQuantParams(this.table, producers, inFloat));
  }
}

/** The fields loadCalibration reads, checked: a corrupt or hand-edited calibration.json is a
 *  BAD_INPUT naming the field, never a TypeError further on. */
function checkTable(t: unknown): asserts t is CalibrationTable {
  const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const numbers = (v: unknown, int = false): v is number[] =>
    Array.isArray(v) && v.every((x) => typeof x === 'number' && (int ? Number.isInteger(x) && Math.abs(x) <= 64 : Number.isFinite(x)));
  const bad = (field: string, want: string): never => fail('BAD_INPUT', `calibration.json: "${field}" must be ${want}`);
  if (!obj(t) || t.format !== 'p2calib-calibration' || t.version !== 1) fail('BAD_INPUT', 'not a p2calib calibration.json (format/version missing)');
  for (const k of ['preset', 'estimator', 'biasMode']) if (typeof t[k] !== 'string') bad(k, 'a string');
  if (typeof t.bits !== 'number') bad('bits', 'a number');
  // Tables written before the option existed were calibrated keeping the Clip bounds.
  if (t.keepClipBounds === undefined) t.keepClipBounds = true;
  if (typeof t.keepClipBounds !== 'boolean') bad('keepClipBounds', 'true or false');
  if (t.equalize === undefined) t.equalize = false;
  if (typeof t.equalize !== 'boolean') bad('equalize', 'true or false');
  if (!Number.isInteger(t.images) || (t.images as number) < 0) bad('images', 'a count');
  for (const k of ['sixteenBit', 'floatNodes', 'sixteenBitWeights']) {
    const v = t[k];
    if ((k === 'sixteenBit' || v !== undefined) && !(Array.isArray(v) && v.every((x) => typeof x === 'string'))) bad(k, 'a list of names');
  }
  if (t.rules !== undefined && !(obj(t.rules) && ['clipWeights', 'biasCalibration', 'perChannelDepthwise'].every((k) => typeof (t.rules as Record<string, unknown>)[k] === 'boolean'))) {
    bad('rules', '{"clipWeights", "biasCalibration", "perChannelDepthwise"} booleans');
  }
  const input = t.input;
  if (!obj(input) || typeof input.pixels !== 'boolean') bad('input', '{"pixels": true|false, ...}');
  const a = (input as Record<string, unknown>).affine;
  if ((input as Record<string, unknown>).pixels && (!obj(a) || typeof a.scale !== 'number' || !numbers(a.mean) || !numbers(a.std)
      || a.mean.length !== a.std.length || (a.layout !== 'NCHW' && a.layout !== 'NHWC'))) {
    bad('input.affine', '{"scale", "mean", "std", "layout"}');
  }
  if (!obj(t.tensors)) bad('tensors', 'an object');
  for (const [name, e] of Object.entries(t.tensors as object)) {
    if (!obj(e) || !numbers(e.range) || e.range.length !== 2 || !(e.range[0] <= e.range[1])) bad(`tensors.${name}.range`, 'two numbers, the lower first');
    const x = (e as Record<string, unknown>).extremes;
    if (x !== undefined && (!numbers(x) || x.length !== 2 || !(x[0] <= x[1]))) bad(`tensors.${name}.extremes`, 'two numbers, the lower first');
  }
  if (!obj(t.layers)) bad('layers', 'an object');
  const prov = t.provenance;
  if (prov !== undefined) {
    if (!obj(prov) || !obj(prov.model) || !(prov.model.sha256 === null || typeof prov.model.sha256 === 'string')) bad('provenance.model', '{"sha256": "<hex>"}');
    const pre = (prov as Record<string, unknown>).preprocessing;
    if (!(pre === null || obj(pre))) bad('provenance.preprocessing', 'a preprocessing spec or null');
  }
  for (const [name, e] of Object.entries(t.layers as object)) {
    if (!obj(e) || !numbers(e.bias)) bad(`layers.${name}.bias`, 'a list of numbers');
    if (!numbers((e as Record<string, unknown>).weightScaleLog2, true)) bad(`layers.${name}.weightScaleLog2`, 'a list of integers from -64 to 64');
  }
}

/** The fields of calibration.json that follow from its ranges and biases, the model and the
 *  device's rules: recomputed at load and compared. */
const DERIVED = {
  tensors: ['clip', 'scale', 'scaleLog2', 'bits', 'signed'],
  layers: ['op', 'input', 'output', 'weightBits', 'weightScale', 'shift', 'weightClip', 'biasMode', 'biasA', 'biasB'],
} as const;

/** Where two JSON values first differ: '' when they are equal, else a path suffix and both values. */
function firstDifference(a: unknown, b: unknown, path = ''): { path: string; a: unknown; b: unknown } | undefined {
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    for (let i = 0; i < a.length; i++) {
      const d = firstDifference(a[i], b[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  return JSON.stringify(a) === JSON.stringify(b) ? undefined : { path, a, b };
}

function checkDerived(given: CalibrationTable, fresh: CalibrationTable): void {
  for (const kind of ['tensors', 'layers'] as const) {
    type Entries = Record<string, Record<string, unknown>>;
    const g = given[kind] as unknown as Entries, f = fresh[kind] as unknown as Entries;
    for (const name of Object.keys(g)) {
      if (!Object.hasOwn(f, name)) fail('BAD_INPUT', `calibration.json: "${kind}.${name}" is not a ${kind === 'tensors' ? 'quantized tensor' : 'weight layer'} of this model: the calibration was made for another model`);
    }
    for (const [name, entry] of Object.entries(f)) {
      for (const k of DERIVED[kind]) {
        const d = firstDifference(g[name][k], entry[k]);
        if (d) {
          fail('BAD_INPUT', `calibration.json: "${kind}.${name}.${k}${d.path}" is ${JSON.stringify(d.a) ?? 'missing'}, but this model and the device's rules give ${JSON.stringify(d.b) ?? 'none'} (the file was edited, or made for another model)`);
        }
      }
    }
  }
}

/**
 * Rebuild a saved calibration (calibration.json) for the model it was made from. A table that
 * records its hash (every file p2calib writes) must match it; every field derived from the
 * ranges and biases (formats, clips, shifts, bias forms) must be what this model and the
 * device's rules give.
 */
export function loadCalibration(source: Model, table: CalibrationTable): Calibration {
  check(source instanceof Model, 'loadCalibration', 'the first argument must be a Model (from loadModel)');
  checkTable(table);
  checkTableHash(table as unknown as Record<string, unknown>);
  checkModel(table.provenance, source);
  const opts = resolveOptions({
    preset: table.preset as Preset, bits: table.bits as Bits, sixteenBit: table.sixteenBit, biasMode: table.biasMode as BiasMode,
    estimator: table.estimator, floatNodes: table.floatNodes, sixteenBitWeights: table.sixteenBitWeights, rules: table.rules,
    keepClipBounds: table.keepClipBounds, equalize: table.equalize,
    outputRanges: table.outputRanges as OutputRanges | undefined,
  });
  const model = calibratedModel(table.input.pixels && !source.pixelInput ? source.withPixelInput(table.input.affine!) : source, opts);
  const { graph, inferred } = model.prepared(1);
  const state = new CalibrationState(graph, inferred, opts, !!model.pixelInput);
  state.restore(table.tensors, table.layers);
  state.images = table.images;
  const { spec, weights } = state.spec();
  checkDerived(table, buildTable(state, spec, weights, { pixelInput: model.pixelInput }));
  return new Calibration(model, state, spec, weights, table);
}

/** The model a calibration works on: equalized when asked (through Clip(0, hi) too, unless the
 *  Clip's bounds are kept: they cannot be scaled per channel). */
function calibratedModel(model: Model, o: ResolvedOptions): Model {
  return o.equalize && !model.equalize ? model.withEqualization({ clips: !o.keepClipBounds, perChannelDepthwise: o.rules.perChannelDepthwise }) : model;
}

/** Per-channel means to record for each weight layer: its stored output ('tidl') or its own
 *  output before the activation ('devkit'). */
export function meanTargets(state: CalibrationState): MeanTarget[] {
  const devkit = state.options.biasCalibration === 'devkit';
  return state.layers.map((l: LayerState) => {
    const tensor = devkit ? l.output : l.stored;
    const shape = state.inferred.values.get(tensor)!.shape;
    const axis = weightFacts(l.node)!.channelAxis(shape.length);
    return { layer: l.node.name, tensor, channels: l.channels, inner: numel(shape.slice(axis + 1)) };
  });
}

/**
 * The TIDL schedule: the factor is divided by 10 during the first and last 10 % of the updates;
 * the devkit keeps it constant.
 */
export function biasFactor(o: ResolvedOptions, update: number, updates: number): number {
  if (o.biasCalibration === 'devkit') return o.factor;
  return update < 0.1 * updates || update >= 0.9 * updates ? o.factor / 10 : o.factor;
}

/** Where the images of a calibration come from and which workers process them. */
export interface CalibrationRun<I> {
  /** The images of one pass, in sample order; called once per pass. */
  items(): AsyncIterable<I> | Iterable<I>;
  /** How many images a pass has, when known before the first pass (for progress). */
  count?: number;
  /** Start the workers (once, before the first pass) on the model calibrated: the one given, or
   *  its equalized form. */
  start(setup: WorkerSetup, model: Model): Promise<WorkerHandle<I>[]>;
  /** An item that failed in the first pass (e.g. an undecodable image): returning leaves it out
   *  of every pass, throwing ends the calibration. Without it, any failure ends it. */
  onItemError?(error: unknown, item: I): void;
  /** The samples' preprocessing and identities (one per item), for calibration.json's provenance. */
  source?: CalibrationSource;
  /** Items with the same key load the same feeds (image files: the path), so that one decoding,
   *  kept by a worker, serves every occurrence. */
  key?(item: I): string;
}

/** Decoded images each worker keeps from pass 1 for the later passes: 40 MiB hold about 270 of
 *  MobileNetV2's 224x224 RGB images (the Node loader keeps 8-bit pixels, not float tensors). With
 *  64 MiB, 2 workers on 1000 images peaked at 632 MiB of RSS, past the 600 MiB budget. */
const CACHE_BYTES = 40 * 2 ** 20;
/** Float point tensors each worker keeps for mixed precision's sensitivity images (the float model
 *  then runs once on each, not once per candidate): MobileNetV2's are 26.9 MiB an image, DeepLabV3's
 *  60.0, YOLOX-nano's 114.7; of 2 workers' 4 images each, all of the first two and 2 of YOLOX's.
 *  Dropped after that pass. */
const KEEP_BYTES = 256 * 2 ** 20;

/** Float per-channel means that pass 1 keeps for bias calibration, as per-batch sums (they do not
 *  change between passes): 32 MiB hold 232 of MobileNetV2's batches of 8 images (18 056 channels,
 *  1856 images). The batches past the bound run the float model for them in each bias pass. */
const MEANS_BYTES = 32 * 2 ** 20;

/** The items of a pass without those the first pass left out (by their position). */
async function* without<I>(items: AsyncIterable<I> | Iterable<I>, left: Set<number>): AsyncGenerator<I> {
  let index = 0;
  for await (const item of items) if (!left.has(index++)) yield item;
}

/** The first `count` items. */
async function* firstOf<I>(items: AsyncIterable<I>, count: number): AsyncGenerator<I> {
  if (count <= 0) return;
  let n = 0;
  for await (const item of items) {
    yield item;
    if (++n === count) return;
  }
}

/** Milliseconds per phase: the workers' (summed over workers) and the coordinator's. */
export interface CalibrationTimings extends WorkerTimings {
  workers: number;
  /** From the start to the end of the run (the wall clock). */
  total: number;
  /** Starting the workers (models, engines). */
  start: number;
  /** Folding ranges, summing means, bias updates (the coordinator). */
  merge: number;
  /** Formats and weight quantization after pass 1, and the workers' fixed-point engines. */
  spec: number;
  /** Measuring the sensitivities and choosing the 16-bit layers (mixedPrecision), when asked. */
  mixedPrecision?: number;
}

/**
 * Run requests for every image of a pass across the workers, at most `window` at a time, and hand
 * the results to `consume` in image order. A request goes to the worker `route` names (the one
 * holding the image decoded; -1 or undefined: none), else to the one with the fewest outstanding
 * requests; which worker computes an image does not change its result.
 */
async function inImageOrder<I, R>(
  items: AsyncIterable<I> | Iterable<I>, workers: WorkerHandle<I>[], window: number,
  request: (w: WorkerHandle<I>, item: I, index: number, worker: number) => Promise<R>,
  consume: (result: R, index: number) => void | Promise<void>,
  route?: (index: number, item: I) => number | undefined,
): Promise<number> {
  const it = (Symbol.asyncIterator in items ? items[Symbol.asyncIterator]() : items[Symbol.iterator]()) as AsyncIterator<I> | Iterator<I>;
  const busy = workers.map(() => 0);
  const pending: Promise<R>[] = [];
  let dispatched = 0, consumed = 0, ended = false;
  try {
    for (;;) {
      while (!ended && pending.length < window) {
        const r = await it.next();
        if (r.done) {
          ended = true;
          break;
        }
        let w = route?.(dispatched, r.value) ?? -1;
        if (w < 0) {
          w = 0;
          for (let k = 1; k < workers.length; k++) if (busy[k] < busy[w]) w = k;
        }
        busy[w]++;
        const result = request(workers[w], r.value, dispatched, w);
        dispatched++;
        result.then(() => busy[w]--, () => {});
        pending.push(result);
      }
      const next = pending.shift();
      if (!next) return consumed;
      await consume(await next, consumed++);
    }
  } finally {
    if (!ended) await it.return?.();
  }
}

/**
 * The coordinator: sends the per-image work to the workers and merges their results in image
 * order, so that the calibration is byte-identical whatever the number of workers. Pass 1 folds
 * each image's ranges into the running averages; the weights are then frozen and the formats
 * fixed; each bias-calibration pass sums per batch the float and fixed per-channel means image
 * by image and updates the biases after each batch (broadcast to every worker); the last pass
 * also sums each point's SQNR terms image by image.
 */
export async function runCalibration<I>(source: Model, run: CalibrationRun<I>, options: CalibrateOptions = {}): Promise<Calibration> {
  checkCallbacks(options, ['onProgress', 'onSkip'], 'calibrating');
  const c = await Coordinator.start(source, run, options);
  let closed = false;
  try {
    await c.foldRanges();
    const mixed = await c.chooseMixedPrecision();
    const { spec, weights, formats } = await c.sendSpec();
    const sums = await c.measurePasses();
    const errors = c.pointErrors(sums);
    const verdicts = diagnose(c.state, formats, errors);
    const sqnr = new Map([...errors].map(([p, e]) => [p, sqnrDb(e.signal, e.noise)]));
    const table = buildTable(c.state, spec, weights, { sqnr, pixelInput: c.model.pixelInput, formats, verdicts, mixed });
    closed = true;
    await c.closeWorkers();
    return await c.finish(spec, weights, table);
  } finally {
    if (!closed) await c.abort();
  }
}

/** The SQNR terms summed over the images of the last pass, two per point (signal, noise), and
 *  the clipping terms likewise (clipped signal, clipping noise). */
interface PointSums { sqnr: Float64Array; clip: Float64Array }

/** The state of one calibration run between its steps (runCalibration names them in order). */
class Coordinator<I> {
  readonly state: CalibrationState;
  private readonly points: string[];
  private readonly observed: readonly number[];
  /** Per worker: one image computing, two loading (decoding finishes in the gaps between images). */
  private readonly window: number;
  private readonly biasPasses: number;
  private readonly totalPasses: number;
  private readonly leftOut = new Set<number>();
  /** Per image of the later passes, its index in pass 1; per pass-1 image, its cache slot (the
   *  index of the first occurrence of its key) and the worker that loaded it then (-1: not kept);
   *  per slot, the last pass-1 image that reads it. */
  private readonly first: number[] = [];
  private readonly slot: number[] = [];
  private readonly slotOfKey = new Map<string, number>();
  private readonly loadedBy: number[] = [];
  private readonly lastRead: number[] = [];
  /** Where each weight layer's channels are in the means vectors, and their length. */
  private readonly offsets: number[];
  private readonly length: number;
  /** Pass 1's float means, summed per batch in image order as bias calibration sums them, for the
   *  first `meansKept` images (those asked for them, until one is not: the batches they fill). */
  private readonly meansBatches: number;
  private readonly floatSums: Float64Array[] = [];
  private meansKept = 0;

  private constructor(
    private readonly t0: number,
    readonly model: Model,
    private readonly run: CalibrationRun<I>,
    private readonly options: CalibrateOptions,
    private readonly opts: ResolvedOptions,
    state: CalibrationState,
    targets: MeanTarget[],
    private readonly workers: WorkerHandle<I>[],
    private readonly timings: CalibrationTimings,
  ) {
    this.state = state;
    this.points = state.placement.points;
    this.window = 3 * workers.length;
    this.observed = workers[0].observed;
    this.biasPasses = opts.rules.biasCalibration ? opts.iterations : 0;
    this.totalPasses = 1 + Math.max(this.biasPasses, 1);
    ({ offsets: this.offsets, length: this.length } = meanOffsets(targets));
    this.meansBatches = this.biasPasses ? Math.floor(MEANS_BYTES / (8 * Math.max(this.length, 1))) : 0;
  }

  /** Resolve the options, prepare the model and start the workers. */
  static async start<I>(source: Model, run: CalibrationRun<I>, options: CalibrateOptions): Promise<Coordinator<I>> {
    const opts = resolveOptions(options);
    const t0 = performance.now();
    const model = calibratedModel(source, opts);
    const { graph, inferred } = model.prepared(1);
    const state = new CalibrationState(graph, inferred, opts, !!model.pixelInput);
    const points = state.placement.points;
    const targets = meanTargets(state);
    const devkit = opts.biasCalibration === 'devkit';
    const timings: CalibrationTimings = { ...noTimings(), workers: 0, total: 0, start: 0, merge: 0, spec: 0 };
    const t = performance.now();
    const workers = await run.start({
      points, targets, estimator: opts.rules.estimator, meansOf: devkit ? 'accumulator' : 'output', subsampleSeed: opts.subsampleSeed,
      peaks: points.flatMap((p, i) => (state.peaks.has(p) ? [i] : [])),
      cacheBytes: CACHE_BYTES, keepBytes: KEEP_BYTES,
    }, model);
    timings.workers = workers.length;
    timings.start = performance.now() - t;
    return new Coordinator(t0, model, run, options, opts, state, targets, workers, timings);
  }

  /** Scheduling: one pass over the images (those pass 1 did not leave out) across the workers,
   *  results consumed in image order (the time spent consuming counted as merge time). */
  private async onePass<R>(
    pass: number, request: (w: WorkerHandle<I>, item: I, index: number, worker: number) => Promise<R>, consume: (r: R, index: number) => void | Promise<void>,
    route?: (index: number, item: I) => number | undefined,
  ): Promise<void> {
    const { run, state, timings, leftOut } = this;
    const n = await inImageOrder(leftOut.size ? without(run.items(), leftOut) : run.items(), this.workers, this.window, request, async (r, index) => {
      const t1 = performance.now();
      const done = consume(r, index);
      timings.merge += performance.now() - t1;
      await done;
      this.options.onProgress?.({ pass, passes: this.totalPasses, done: index + 1, total: state.images || run.count });
    }, route);
    if (n === 0) fail('BAD_INPUT', pass === 0 ? 'no calibration samples were given' : 'the samples could be iterated only once; pass an array or a re-iterable source when iterations > 1');
    if (pass > 0 && n !== state.images) fail('BAD_INPUT', `the samples gave ${n} images in pass ${pass + 1} but ${state.images} in the first`);
  }

  /** Range folding, pass 1: PACT2 ranges from the float model, per image, folded in image order.
   *  An item that fails here is reported in image order, and left out (or ends the run). */
  async foldRanges(): Promise<void> {
    const { run, state, opts, points } = this;
    const ranges = (w: WorkerHandle<I>, item: I, index: number, worker: number) => {
      if (this.slot[index] === index) this.loadedBy[index] = worker;
      const r = w.ranges(item, index, index < this.meansBatches * opts.batchSize, this.slot[index]);
      return !run.onItemError ? r : r.then((v) => v, (error: unknown) => ({ error, item }));
    };
    // A repeat of an earlier image goes to the worker that loaded it.
    const slotRoute = (index: number, item: I) => {
      const key = run.key?.(item);
      const s = key === undefined ? index : this.slotOfKey.get(key) ?? index;
      if (key !== undefined && s === index) this.slotOfKey.set(key, index);
      this.slot[index] = s;
      return s === index ? undefined : this.loadedBy[s];
    };
    await this.onePass(0, ranges, (r, index) => {
      if ('error' in r) {
        run.onItemError!(r.error, r.item);
        this.leftOut.add(index);
        return;
      }
      // Later passes go to the worker holding the image decoded, or to the least busy one.
      if (this.slot[index] === index && !r.cached) this.loadedBy[index] = -1;
      this.lastRead[this.slot[index]] = index;
      if (r.means && this.meansKept === state.images) {
        const sums = (this.floatSums[Math.floor(this.meansKept / opts.batchSize)] ??= new Float64Array(this.length));
        for (let c = 0; c < this.length; c++) sums[c] += r.means[c];
        this.meansKept++;
      }
      const values = r.ranges;
      this.first.push(index);
      for (const i of this.observed) {
        const at = RANGE_STRIDE * i, seen: [number, number] = [values[at + RANGE_STRIDE - 2], values[at + RANGE_STRIDE - 1]];
        // Finite inputs can still overflow float32 on the way (huge weights) or meet NaN (a Sqrt
        // of a negative): no power-of-2 format holds that.
        if (!values.subarray(at, at + RANGE_STRIDE).every(Number.isFinite)) {
          fail('BAD_INPUT', `sample ${index + 1}: tensor "${points[i]}" of the float model takes values from ${seen[0]} to ${seen[1]}, which no fixed-point format holds (an overflow or NaN in the float model)`);
        }
        state.ranges.get(points[i])!.forEach((range, k) => range.update([values[at + 2 * k], values[at + 2 * k + 1]], seen));
      }
      state.images++;
    }, slotRoute);
    if (!state.images) fail('BAD_IMAGE', `none of the ${this.leftOut.size} images could be used`);
  }

  /** When asked, the 16-bit layers chosen by measuring the first images through the fixed-point
   *  engine with the bits tried, against float. */
  async chooseMixedPrecision(): Promise<MixedPrecisionReport | undefined> {
    const { state, opts, workers } = this;
    if (!opts.mixedPrecision) return undefined;
    const t = performance.now();
    const images = Math.min(opts.mixedPrecision.images, state.images);
    const measure = async (raised: Raised) => {
      state.setMixedPrecision(raised.tensors, raised.weights);
      const { spec } = state.spec();
      await Promise.all(workers.map((w) => w.setSpec(spec)));
      const sums = new Float64Array(2 * this.points.length);
      await inImageOrder(firstOf(without(this.run.items(), this.leftOut), images), workers, this.window,
        (w, item, index) => {
          const fixed = w.measure(item, this.slot[this.first[index]], 0, { means: false }, false);
          const float = w.compare({ means: false, sqnr: true, keep: this.slot[this.first[index]] });
          return fixed.then(() => float);
        }, (m) => {
          for (let k = 0; k < sums.length; k++) sums[k] += m.sqnr![k];
        }, (index) => this.loadedBy[this.slot[this.first[index]]]);
      return sums;
    };
    const mixed = await chooseMixedPrecision(state, opts.mixedPrecision.factor, images, measure);
    state.setMixedPrecision(mixed.chosen.flatMap((g) => g.tensors), mixed.chosen.flatMap((g) => g.weights ?? []));
    this.timings.mixedPrecision = performance.now() - t;
    return mixed;
  }

  /** Freeze the weights, derive the spec (formats, quantized weights) and give it to the workers. */
  async sendSpec(): Promise<ReturnType<CalibrationState['spec']>> {
    const t = performance.now();
    this.state.freezeWeights();
    const spec = this.state.spec();
    await Promise.all(this.workers.map((w) => w.setSpec(spec.spec)));
    this.timings.spec = performance.now() - t;
    return spec;
  }

  /** The later passes: bias calibration (advanced presets), one update per batch on the bias
   *  schedule; the last pass (or a pass of its own without bias calibration) also sums each
   *  stored tensor's SQNR terms. */
  async measurePasses(): Promise<PointSums> {
    const sums: PointSums = { sqnr: new Float64Array(2 * this.points.length), clip: new Float64Array(2 * this.points.length) };
    const bias = new BiasSchedule(this.state, this.opts, this.biasPasses, this.offsets, this.length, this.workers);
    const passes = Math.max(this.biasPasses, 1);
    for (let pass = 0; pass < passes; pass++) await this.measurePass(pass, pass === passes - 1, bias, sums);
    return sums;
  }

  /** One later pass. Per image, the fixed-point engine's answer (its means: what the batch's
   *  update waits for) comes before the float engine's on the same image (the SQNR sums, and the
   *  float means of a batch pass 1 did not keep), which the worker computes meanwhile. SQNR terms
   *  are summed in image order on a chain of their own. */
  private async measurePass(pass: number, last: boolean, bias: BiasSchedule, sums: PointSums): Promise<void> {
    const { opts, biasPasses } = this;
    const batches = Math.ceil(this.state.images / opts.batchSize);
    const floatKept = (batch: number) => this.meansKept === this.state.images || (batch + 1) * opts.batchSize <= this.meansKept;
    const version = (index: number) => (biasPasses ? pass * batches + Math.floor(index / opts.batchSize) : 0);
    let sqnrSummed: Promise<void> = Promise.resolve();
    const measure = (w: WorkerHandle<I>, item: I, index: number) => {
      const s = this.slot[this.first[index]];
      const fixed = w.measure(item, s, version(index), { means: biasPasses > 0 }, last && this.lastRead[s] === this.first[index]);
      const req: CompareRequest = { means: biasPasses > 0 && !floatKept(Math.floor(index / opts.batchSize)), sqnr: last };
      const float = req.means || req.sqnr ? w.compare(req) : undefined;
      float?.catch(() => {}); // its error is reported by the chain or the consumer awaiting it
      return fixed.then((m) => ({ fixed: m, float }));
    };
    await this.onePass(1 + pass, measure, async (m: { fixed: Measured; float?: Promise<Compared> }, index) => {
      const float = m.float;
      if (float && last) {
        sqnrSummed = sqnrSummed.then(async () => {
          const { sqnr: s, clip: c } = await float;
          for (let k = 0; k < sums.sqnr.length; k++) sums.sqnr[k] += s![k];
          for (let k = 0; k < sums.clip.length; k++) sums.clip[k] += c![k];
        });
        sqnrSummed.catch(() => {}); // awaited after the pass
      }
      if (!biasPasses) return;
      const batch = Math.floor(index / opts.batchSize);
      bias.addFixed(batch, m.fixed.meansFixed!);
      if (!floatKept(batch)) bias.addFloat((await float!).meansFloat!);
      bias.imageDone(floatKept(batch) ? this.floatSums[batch] : undefined);
    }, (index) => this.loadedBy[this.slot[this.first[index]]]);
    bias.flush(this.floatSums, floatKept);
    await sqnrSummed;
  }

  /** SQNR: each observed point's error terms over every image of the last pass. */
  pointErrors(sums: PointSums): Map<string, PointError> {
    const errors = new Map<string, PointError>();
    const { sqnr, clip } = sums;
    for (const i of this.observed) {
      const p = this.points[i];
      errors.set(p, {
        signal: sqnr[2 * i], noise: sqnr[2 * i + 1], clipped: clip[2 * i], clipNoise: clip[2 * i + 1],
        count: numel(this.state.inferred.values.get(p)!.shape) * this.state.images,
      });
    }
    return errors;
  }

  /** Timings: close the workers and add theirs. */
  async closeWorkers(): Promise<void> {
    for (const w of await Promise.all(this.workers.map((w) => w.close()))) {
      for (const k of Object.keys(w) as (keyof WorkerTimings)[]) this.timings[k] += w[k];
    }
  }

  abort(): Promise<unknown> {
    return Promise.all(this.workers.map((w) => w.abort()));
  }

  /** The Calibration, its table completed with the provenance and the integers of its fixed-point
   *  plan, and the run's total time. */
  async finish(spec: QuantSpec, weights: Map<string, QuantizedWeights>, table: CalibrationTable): Promise<Calibration> {
    const { run, state } = this;
    const cal = new Calibration(this.model, state, spec, weights, table, this.timings);
    const source = run.source && { ...run.source, images: run.source.images?.filter((_, i) => !this.leftOut.has(i)) };
    table.provenance = await buildProvenance(this.model, this.opts, state.images, source);
    table.integers = integersSection((await cal.fixedPlan(1)).integers(), state, weights);
    this.timings.total = performance.now() - this.t0;
    return cal;
  }
}

/**
 * The bias schedule: per batch of images, the float and fixed per-channel means summed image by
 * image, then each layer's bias moved by factor * (float - fixed) / images (biasFactor's factor
 * for this update) and broadcast to every worker.
 */
class BiasSchedule {
  private readonly sumF: Float64Array;
  private readonly sumQ: Float64Array;
  private readonly biases: Float32Array;
  private readonly updates: number;
  private update = 0;
  private inBatch = 0;
  private batch = 0;

  constructor(
    private readonly state: CalibrationState, private readonly opts: ResolvedOptions, passes: number,
    private readonly offsets: number[], length: number, private readonly workers: Pick<WorkerHandle<unknown>, 'setBiases'>[],
  ) {
    this.sumF = new Float64Array(length);
    this.sumQ = new Float64Array(length);
    this.biases = new Float32Array(length);
    this.updates = passes * Math.ceil(state.images / opts.batchSize);
  }

  /** An image's fixed-point means, of batch `batch`. */
  addFixed(batch: number, q: Float64Array): void {
    this.batch = batch;
    for (let c = 0; c < this.sumQ.length; c++) this.sumQ[c] += q[c];
  }

  /** An image's float means, where pass 1 did not keep its batch's. */
  addFloat(f: Float64Array): void {
    for (let c = 0; c < this.sumF.length; c++) this.sumF[c] += f[c];
  }

  /** The image counted; a full batch updates the biases (with `kept`, pass 1's float sums of the
   *  batch, when it kept them). */
  imageDone(kept: Float64Array | undefined): void {
    if (++this.inBatch === this.opts.batchSize) this.apply(kept);
  }

  /** The pass's last, partial batch. */
  flush(floatSums: Float64Array[], floatKept: (batch: number) => boolean): void {
    this.apply(floatKept(this.batch) ? floatSums[this.batch] : undefined);
  }

  private apply(kept: Float64Array | undefined): void {
    if (!this.inBatch) return;
    const factor = biasFactor(this.opts, this.update++, this.updates);
    const f = kept ?? this.sumF;
    this.state.layers.forEach((l, k) => {
      const o = this.offsets[k];
      for (let c = 0; c < l.bias.length; c++) l.bias[c] += (factor * (f[o + c] - this.sumQ[o + c])) / this.inBatch;
      this.biases.set(l.bias, o);
    });
    for (const w of this.workers) w.setBiases(this.update, this.biases);
    this.sumF.fill(0);
    this.sumQ.fill(0);
    this.inBatch = 0;
  }
}

/** Split each sample (one image, or a batch of images) into single-image feeds, refusing values
 *  that no range can be taken of. */
async function* eachImage(model: Model, samples: Samples): AsyncGenerator<Record<string, Float32Array>> {
  let index = 0;
  for await (const sample of samples as AsyncIterable<Sample>) {
    for (const feeds of splitImages(model, sample)) {
      index++;
      for (const [name, data] of Object.entries(feeds)) {
        const i = data.findIndex((v) => !Number.isFinite(v));
        if (i >= 0) fail('BAD_INPUT', `calibration sample ${index}: input "${name}" holds ${data[i]} at index ${i}; samples must be finite`);
      }
      yield feeds;
    }
  }
}

/** Calibrate on samples (preprocessed tensors), in this thread. `source` tells calibration.json
 *  where the samples come from (their preprocessing, one identity per image). */
export async function calibrate(model: Model, samples: Samples, given?: CalibrateOptions & { source?: CalibrationSource }): Promise<Calibration> {
  check(model instanceof Model, 'calibrate', 'the first argument must be a Model (from loadModel)');
  checkIterable(samples, 'calibrate', 'samples');
  const options = optionsOf(given, 'calibrate');
  return runCalibration(model, {
    source: options.source,
    items: () => eachImage(model, samples),
    count: Array.isArray(samples) ? samples.reduce((n: number, s: Sample) => n + model.feedsToRecord(s).batch, 0) : undefined,
    // The samples are in memory already: nothing to keep.
    start: async (setup, m) => [new LocalWorker(await CalibrationWorker.create(m, setup), (feeds: Record<string, Float32Array>) => feeds, 0)],
  }, options);
}

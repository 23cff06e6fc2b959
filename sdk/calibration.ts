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
  return o.equalize && !model.equalize ? model.withEqualization({ clips: !o.keepClipBounds }) : model;
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
}

/** Decoded images each worker keeps from pass 1 for the later passes: 40 MiB hold about 270 of
 *  MobileNetV2's 224x224 RGB images (the Node loader keeps 8-bit pixels, not float tensors). With
 *  64 MiB, 2 workers on 1000 images peaked at 632 MiB of RSS, past the 600 MiB budget. */
const CACHE_BYTES = 40 * 2 ** 20;

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
 * holding the image decoded), else to the one with the fewest outstanding requests; which worker
 * computes an image does not change its result.
 */
async function inImageOrder<I, R>(
  items: AsyncIterable<I> | Iterable<I>, workers: WorkerHandle<I>[], window: number,
  request: (w: WorkerHandle<I>, item: I, index: number, worker: number) => Promise<R>,
  consume: (result: R, index: number) => void | Promise<void>,
  route?: (index: number) => number | undefined,
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
        let w = route?.(dispatched) ?? -1;
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
  const opts = resolveOptions(options);
  const t0 = performance.now();
  const model = calibratedModel(source, opts);
  const { graph, inferred } = model.prepared(1);
  const state = new CalibrationState(graph, inferred, opts, !!model.pixelInput);
  const points = state.placement.points;
  const targets = meanTargets(state);
  const devkit = opts.biasCalibration === 'devkit';
  const timings: CalibrationTimings = { ...noTimings(), workers: 0, total: 0, start: 0, merge: 0, spec: 0 };
  let t = performance.now();
  const workers = await run.start({
    points, targets, estimator: opts.rules.estimator, meansOf: devkit ? 'accumulator' : 'output', subsampleSeed: opts.subsampleSeed,
    peaks: points.flatMap((p, i) => (state.peaks.has(p) ? [i] : [])),
    cacheBytes: CACHE_BYTES,
  }, model);
  timings.workers = workers.length;
  timings.start = performance.now() - t;
  // Per worker: one image computing, two loading (decoding finishes in the gaps between images).
  const window = 3 * workers.length;
  const observed = workers[0].observed;
  const biasPasses = opts.rules.biasCalibration ? opts.iterations : 0;
  const totalPasses = 1 + Math.max(biasPasses, 1);
  const report = (pass: number, done: number) => options.onProgress?.({ pass, passes: totalPasses, done, total: state.images || run.count });
  const leftOut = new Set<number>();
  // Per image of the later passes, its index in pass 1 and the worker that loaded it then.
  const first: number[] = [];
  const loadedBy: number[] = [];
  const onePass = async <R>(
    pass: number, request: (w: WorkerHandle<I>, item: I, index: number, worker: number) => Promise<R>, consume: (r: R, index: number) => void | Promise<void>,
    route?: (index: number) => number | undefined,
  ) => {
    const n = await inImageOrder(leftOut.size ? without(run.items(), leftOut) : run.items(), workers, window, request, async (r, index) => {
      const t1 = performance.now();
      const done = consume(r, index);
      timings.merge += performance.now() - t1;
      await done;
      report(pass, index + 1);
    }, route);
    if (n === 0) fail('BAD_INPUT', pass === 0 ? 'no calibration samples were given' : 'the samples could be iterated only once; pass an array or a re-iterable source when iterations > 1');
    if (pass > 0 && n !== state.images) fail('BAD_INPUT', `the samples gave ${n} images in pass ${pass + 1} but ${state.images} in the first`);
  };
  const { offsets, length } = meanOffsets(targets);
  // Pass 1's float means, summed per batch in image order as bias calibration sums them, for the
  // first `meansKept` images (those asked for them, until one is not: the batches they fill).
  const meansBatches = biasPasses ? Math.floor(MEANS_BYTES / (8 * Math.max(length, 1))) : 0;
  const floatSums: Float64Array[] = [];
  let meansKept = 0;
  let closed = false;
  try {
    // Pass 1: PACT2 ranges from the float model, per image, folded in image order.
    // An item that fails here is reported in image order, and left out (or ends the run).
    const ranges = (w: WorkerHandle<I>, item: I, index: number, worker: number) => {
      loadedBy[index] = worker;
      const r = w.ranges(item, index, index < meansBatches * opts.batchSize);
      return !run.onItemError ? r : r.then((v) => v, (error: unknown) => ({ error, item }));
    };
    await onePass(0, ranges, (r, index) => {
      if ('error' in r) {
        run.onItemError!(r.error, r.item);
        leftOut.add(index);
        return;
      }
      // Later passes go to the worker holding the image decoded, or to the least busy one.
      if (!r.cached) loadedBy[index] = -1;
      if (r.means && meansKept === state.images) {
        const sums = (floatSums[Math.floor(meansKept / opts.batchSize)] ??= new Float64Array(length));
        for (let c = 0; c < length; c++) sums[c] += r.means[c];
        meansKept++;
      }
      const values = r.ranges;
      first.push(index);
      for (const i of observed) {
        const at = RANGE_STRIDE * i, seen: [number, number] = [values[at + RANGE_STRIDE - 2], values[at + RANGE_STRIDE - 1]];
        // Finite inputs can still overflow float32 on the way (huge weights) or meet NaN (a Sqrt
        // of a negative): no power-of-2 format holds that.
        if (!values.subarray(at, at + RANGE_STRIDE).every(Number.isFinite)) {
          fail('BAD_INPUT', `sample ${index + 1}: tensor "${points[i]}" of the float model takes values from ${seen[0]} to ${seen[1]}, which no fixed-point format holds (an overflow or NaN in the float model)`);
        }
        state.ranges.get(points[i])!.forEach((range, k) => range.update([values[at + 2 * k], values[at + 2 * k + 1]], seen));
      }
      state.images++;
    });
    if (!state.images) fail('BAD_IMAGE', `none of the ${leftOut.size} images could be used`);
    let mixed: MixedPrecisionReport | undefined;
    if (opts.mixedPrecision) {
      t = performance.now();
      const images = Math.min(opts.mixedPrecision.images, state.images);
      // The first images, through the fixed-point engine with the bits asked, against float.
      const measure = async (raised: Raised) => {
        state.setMixedPrecision(raised.tensors, raised.weights);
        const { spec } = state.spec();
        await Promise.all(workers.map((w) => w.setSpec(spec)));
        const sums = new Float64Array(2 * points.length);
        await inImageOrder(firstOf(without(run.items(), leftOut), images), workers, window,
          (w, item, index) => {
            const fixed = w.measure(item, first[index], 0, { means: false }, false);
            const float = w.compare({ means: false, sqnr: true });
            return fixed.then(() => float);
          }, (m) => {
            for (let k = 0; k < sums.length; k++) sums[k] += m.sqnr![k];
          }, (index) => loadedBy[first[index]]);
        return sums;
      };
      mixed = await chooseMixedPrecision(state, opts.mixedPrecision.factor, images, measure);
      state.setMixedPrecision(mixed.chosen.flatMap((g) => g.tensors), mixed.chosen.flatMap((g) => g.weights ?? []));
      timings.mixedPrecision = performance.now() - t;
    }
    t = performance.now();
    state.freezeWeights();
    const { spec, weights, formats } = state.spec();
    await Promise.all(workers.map((w) => w.setSpec(spec)));
    timings.spec = performance.now() - t;

    // Bias calibration (advanced presets), one update per batch; the last pass (or a pass of its
    // own without bias calibration) also measures each stored tensor's SQNR.
    const batches = Math.ceil(state.images / opts.batchSize);
    const updates = biasPasses * batches;
    const floatKept = (batch: number) => meansKept === state.images || (batch + 1) * opts.batchSize <= meansKept;
    const sumF = new Float64Array(length), sumQ = new Float64Array(length);
    const biases = new Float32Array(length);
    const sqnr = new Float64Array(2 * points.length);
    const clip = new Float64Array(2 * points.length);
    let update = 0;
    for (let pass = 0; pass < Math.max(biasPasses, 1); pass++) {
      const last = pass === Math.max(biasPasses, 1) - 1;
      let inBatch = 0, batch = 0;
      const applyBatch = () => {
        if (!inBatch || !biasPasses) return;
        const factor = biasFactor(opts, update++, updates);
        const f = floatKept(batch) ? floatSums[batch] : sumF;
        state.layers.forEach((l, k) => {
          const o = offsets[k];
          for (let c = 0; c < l.bias.length; c++) l.bias[c] += (factor * (f[o + c] - sumQ[o + c])) / inBatch;
          biases.set(l.bias, o);
        });
        for (const w of workers) w.setBiases(update, biases);
        sumF.fill(0);
        sumQ.fill(0);
        inBatch = 0;
      };
      const version = (index: number) => (biasPasses ? pass * batches + Math.floor(index / opts.batchSize) : 0);
      // Per image, the fixed-point engine's answer (its means: what the batch's update waits for)
      // comes before the float engine's on the same image (the SQNR sums, and the float means of
      // a batch pass 1 did not keep), which the worker computes meanwhile. SQNR terms are summed
      // in image order on a chain of their own.
      let sqnrSummed: Promise<void> = Promise.resolve();
      const measure = (w: WorkerHandle<I>, item: I, index: number) => {
        const fixed = w.measure(item, first[index], version(index), { means: biasPasses > 0 }, last);
        const req: CompareRequest = { means: biasPasses > 0 && !floatKept(Math.floor(index / opts.batchSize)), sqnr: last };
        const float = req.means || req.sqnr ? w.compare(req) : undefined;
        float?.catch(() => {}); // its error is reported by the chain or the consumer awaiting it
        return fixed.then((m) => ({ fixed: m, float }));
      };
      await onePass(1 + pass, measure, async (m: { fixed: Measured; float?: Promise<Compared> }, index) => {
        const float = m.float;
        if (float && last) {
          sqnrSummed = sqnrSummed.then(async () => {
            const { sqnr: s, clip: c } = await float;
            for (let k = 0; k < sqnr.length; k++) sqnr[k] += s![k];
            for (let k = 0; k < clip.length; k++) clip[k] += c![k];
          });
          sqnrSummed.catch(() => {}); // awaited after the pass
        }
        if (!biasPasses) return;
        batch = Math.floor(index / opts.batchSize);
        const q = m.fixed.meansFixed!;
        for (let c = 0; c < length; c++) sumQ[c] += q[c];
        if (!floatKept(batch)) {
          const f = (await float!).meansFloat!;
          for (let c = 0; c < length; c++) sumF[c] += f[c];
        }
        if (++inBatch === opts.batchSize) applyBatch();
      }, (index) => loadedBy[first[index]]);
      applyBatch();
      await sqnrSummed;
    }
    const db = new Map<string, number>();
    const errors = new Map<string, PointError>();
    for (const i of observed) {
      const p = points[i];
      db.set(p, sqnrDb(sqnr[2 * i], sqnr[2 * i + 1]));
      errors.set(p, {
        signal: sqnr[2 * i], noise: sqnr[2 * i + 1], clipped: clip[2 * i], clipNoise: clip[2 * i + 1],
        count: numel(inferred.values.get(p)!.shape) * state.images,
      });
    }
    const verdicts = diagnose(state, formats, errors);
    const table = buildTable(state, spec, weights, { sqnr: db, pixelInput: model.pixelInput, formats, verdicts, mixed });
    closed = true;
    for (const w of await Promise.all(workers.map((w) => w.close()))) {
      for (const k of Object.keys(w) as (keyof WorkerTimings)[]) timings[k] += w[k];
    }
    const cal = new Calibration(model, state, spec, weights, table, timings);
    const source = run.source && { ...run.source, images: run.source.images?.filter((_, i) => !leftOut.has(i)) };
    table.provenance = await buildProvenance(model, opts, state.images, source);
    table.integers = integersSection((await cal.fixedPlan(1)).integers(), state, weights);
    timings.total = performance.now() - t0;
    return cal;
  } finally {
    if (!closed) await Promise.all(workers.map((w) => w.abort()));
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

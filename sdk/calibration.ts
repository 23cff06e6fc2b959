/** calibrate() and the Calibration it returns: the public face of sdk/quant and sdk/export. */
import { exportCalibrated } from './export/calibrated.js';
import { exportQdq } from './export/qdq.js';
import { buildTable, type CalibrationTable } from './export/table.js';
import { fail } from './errors.js';
import type { Feeds, Model } from './model.js';
import {
  CalibrationState, passes, resolveOptions, splitImages, type CalibrateOptions, type LayerState, type Preset, type ResolvedOptions, type Samples,
} from './quant/calibrate.js';
import { FixedPlan } from './engine/fixed.js';
import { FloatObserver, type MeanTarget } from './quant/observe.js';
import type { BiasMode, Bits, QuantSpec } from './quant/spec.js';
import type { QuantizedWeights } from './quant/weights.js';

export class Calibration {
  private readonly plans = new Map<number, Promise<FixedPlan>>();

  constructor(
    readonly model: Model,
    readonly state: CalibrationState,
    readonly spec: QuantSpec,
    private readonly weights: Map<string, QuantizedWeights>,
    readonly table: CalibrationTable,
  ) {}

  /** The fixed-point simulation of the device: float feeds in, dequantized outputs out. */
  async run(feeds: Feeds): Promise<Record<string, Float32Array>> {
    const { record, batch } = this.model.feedsToRecord(feeds);
    return (await this.fixedPlan(batch)).run(record);
  }

  /** The fixed-point engine for a batch size, made once and reused. */
  fixedPlan(batch: number): Promise<FixedPlan> {
    let p = this.plans.get(batch);
    if (!p) {
      p = FixedPlan.create(this.model, batch, this.spec);
      this.plans.set(batch, p);
    }
    return p;
  }

  /** QDQ ONNX: what ONNX Runtime runs and TIDL imports as a pre-quantized model. */
  toQdqOnnx(): Uint8Array {
    return exportQdq(this.state, this.spec, this.weights);
  }

  /** The folded float model with PACT2 clips and calibrated weights and biases. */
  toCalibratedOnnx(): Uint8Array {
    return exportCalibrated(this.state, this.spec, this.weights);
  }
}

/** Rebuild a saved calibration (calibration.json) for the model it was made from. */
export function loadCalibration(source: Model, table: CalibrationTable): Calibration {
  if (table?.format !== 'p2calib-calibration' || table.version !== 1) fail('BAD_INPUT', 'not a p2calib calibration.json (format/version missing)');
  const model = table.input.pixels && !source.pixelInput ? source.withPixelInput(table.input.affine!) : source;
  const opts = resolveOptions({
    preset: table.preset as Preset, bits: table.bits as Bits, sixteenBit: table.sixteenBit, biasMode: table.biasMode as BiasMode,
    estimator: table.estimator,
  });
  const { graph, inferred } = model.prepared(1);
  const state = new CalibrationState(graph, inferred, opts, !!model.pixelInput);
  state.restore(table.tensors, table.layers);
  state.images = table.images;
  const { spec, weights } = state.spec();
  return new Calibration(model, state, spec, weights, table);
}

/** Per-channel means to record for each weight layer: its stored output ('tidl') or its own
 *  output before the activation ('devkit'). */
export function meanTargets(state: CalibrationState): MeanTarget[] {
  const devkit = state.options.biasCalibration === 'devkit';
  return state.layers.map((l: LayerState) => {
    const tensor = devkit ? l.output : l.stored;
    const shape = state.inferred.values.get(tensor)!.shape;
    const convLike = l.node.op === 'Conv' || l.node.op === 'ConvTranspose';
    return { layer: l.node.name, tensor, channels: l.channels, inner: convLike ? shape.slice(2).reduce((a, b) => a * b, 1) : 1 };
  });
}

/** Per-tensor sums for SQNR = 10 log10(sum f^2 / sum (f - q)^2). */
class SqnrMeter {
  private readonly sums = new Map<string, [number, number]>();

  add(name: string, f: Float32Array, q: ArrayLike<number>, scaleLog2: number): void {
    const step = 2 ** -scaleLog2;
    let signal = 0, noise = 0;
    for (let i = 0; i < f.length; i++) {
      const e = f[i] - q[i] * step;
      signal += f[i] * f[i];
      noise += e * e;
    }
    const s = this.sums.get(name) ?? [0, 0];
    this.sums.set(name, [s[0] + signal, s[1] + noise]);
  }

  result(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, [signal, noise]] of this.sums) out.set(name, noise === 0 ? Infinity : 10 * Math.log10(signal / noise));
    return out;
  }
}

/**
 * The TIDL schedule: the factor is divided by 10 during the first and last 10 % of the updates;
 * the devkit keeps it constant.
 */
export function biasFactor(o: ResolvedOptions, update: number, updates: number): number {
  if (o.biasCalibration === 'devkit') return o.factor;
  return update < 0.1 * updates || update >= 0.9 * updates ? o.factor / 10 : o.factor;
}

export async function calibrate(model: Model, samples: Samples, options: CalibrateOptions = {}): Promise<Calibration> {
  const opts = resolveOptions(options);
  const started = Date.now();
  const { graph, inferred } = model.prepared(1);
  const state = new CalibrationState(graph, inferred, opts, !!model.pixelInput);
  const targets = meanTargets(state);
  const devkit = opts.biasCalibration === 'devkit';
  // The observer reads every PACT2 point and mean target as it is produced: none may be fused
  // into the activation after it (e.g. a Conv output feeding HardSwish).
  const { plan, rt } = await model.floatPlan(1, { observe: [...state.placement.points, ...targets.map((t) => t.tensor)] });
  const subsample = opts.subsampleSeed === undefined ? undefined : { seed: opts.subsampleSeed, shapeOf: (t: string) => inferred.values.get(t)!.shape };
  const observer = new FloatObserver(plan, rt, state.placement.points, targets, opts.rules.estimator, subsample);
  const biasPasses = opts.rules.biasCalibration ? opts.iterations : 0;
  const totalPasses = 1 + Math.max(biasPasses, 1);
  const report = (pass: number, done: number) =>
    options.onProgress?.({ pass, passes: totalPasses, done, total: state.images || (Array.isArray(samples) ? samples.length : undefined) });

  // Pass 1: PACT2 ranges from the float model, per image, merged in sample order.
  let done = 0;
  for await (const { sample } of passes(samples, 1)) {
    for (const feeds of splitImages(model, sample)) {
      for (const [t, r] of observer.observe(feeds, { image: state.images, ranges: true }).stats.ranges) state.ranges.get(t)!.update(r);
      state.images++;
    }
    report(0, ++done);
  }
  state.freezeWeights();
  const { spec, weights } = state.spec();
  const fixed = await FixedPlan.create(model, 1, spec, { keep: state.placement.points });

  // Then bias calibration (advanced presets), one update per batch; the last pass (or a pass of
  // its own without bias calibration) also measures each stored tensor's SQNR.
  const batches = Math.ceil(state.images / opts.batchSize);
  const updates = biasPasses * batches;
  let update = 0;
  const sqnr = new SqnrMeter();
  const layers = new Map(state.layers.map((l) => [l.node.name, l]));
  for (let pass = 0; pass < Math.max(biasPasses, 1); pass++) {
    const last = pass === Math.max(biasPasses, 1) - 1;
    const sumF = new Map<string, Float64Array>(), sumQ = new Map<string, Float64Array>();
    let inBatch = 0;
    const applyBatch = () => {
      if (!inBatch || !biasPasses) return;
      const factor = biasFactor(opts, update++, updates);
      for (const [name, l] of layers) {
        const f = sumF.get(name)!, q = sumQ.get(name)!;
        for (let c = 0; c < l.bias.length; c++) l.bias[c] += (factor * (f[c] - q[c])) / inBatch;
        fixed.setBias(name, l.bias);
      }
      sumF.clear();
      sumQ.clear();
      inBatch = 0;
    };
    done = 0;
    let image = 0;
    for await (const { sample } of passes(samples, 1)) {
      for (const feeds of splitImages(model, sample)) {
        let q: Map<string, Float64Array> | undefined;
        if (biasPasses) q = fixed.runWithMeans(feeds, devkit ? 'accumulator' : 'output').means;
        else fixed.run(feeds);
        const { stats } = observer.observe(feeds, {
          image: image++,
          ranges: false,
          onPoint: last ? (name, values) => sqnr.add(name, values, fixed.tensor(name), spec.tensors[name].scaleLog2) : undefined,
        });
        if (q) {
          for (const [name, f] of stats.means) {
            const add = (m: Map<string, Float64Array>, v: Float64Array) => {
              const acc = m.get(name) ?? new Float64Array(v.length);
              for (let c = 0; c < v.length; c++) acc[c] += v[c];
              m.set(name, acc);
            };
            add(sumF, f);
            add(sumQ, q.get(name)!);
          }
          if (++inBatch === opts.batchSize) applyBatch();
        }
      }
      report(1 + pass, ++done);
    }
    applyBatch();
  }
  const table = buildTable(state, spec, weights, { seconds: (Date.now() - started) / 1000, sqnr: sqnr.result(), pixelInput: model.pixelInput });
  return new Calibration(model, state, spec, weights, table);
}

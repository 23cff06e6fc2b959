/** calibrate() and the Calibration it returns: the public face of sdk/quant and sdk/export. */
import { exportCalibrated } from './export/calibrated.js';
import { exportQdq } from './export/qdq.js';
import { buildTable, type CalibrationTable } from './export/table.js';
import { fail } from './errors.js';
import type { Model } from './model.js';
import {
  CalibrationState, passes, resolveOptions, splitImages, type CalibrateOptions, type LayerState, type Preset, type Samples,
} from './quant/calibrate.js';
import { FloatObserver, type MeanTarget } from './quant/observe.js';
import type { BiasMode, Bits, QuantSpec } from './quant/spec.js';
import type { QuantizedWeights } from './quant/weights.js';

export class Calibration {
  constructor(
    readonly model: Model,
    readonly state: CalibrationState,
    readonly spec: QuantSpec,
    private readonly weights: Map<string, QuantizedWeights>,
    readonly table: CalibrationTable,
  ) {}

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

export async function calibrate(model: Model, samples: Samples, options: CalibrateOptions = {}): Promise<Calibration> {
  const opts = resolveOptions(options);
  const started = Date.now();
  const { graph, inferred } = model.prepared(1);
  const state = new CalibrationState(graph, inferred, opts, !!model.pixelInput);
  const targets = meanTargets(state);
  const { plan, rt } = await model.floatPlan(1, { keep: opts.biasCalibration === 'devkit' ? targets.map((t) => t.tensor) : [] });
  const observer = new FloatObserver(plan, rt, state.placement.points, targets, opts.rules.estimator);
  const total = Array.isArray(samples) ? samples.length : undefined;
  let done = 0;
  let lastPass = 0;
  for await (const { pass, sample } of passes(samples, opts.iterations)) {
    if (pass !== lastPass) { lastPass = pass; done = 0; }
    for (const feeds of splitImages(model, sample)) {
      const { stats } = observer.observe(feeds);
      for (const [t, r] of stats.ranges) state.ranges.get(t)!.update(r);
      if (pass === 0) state.images++;
    }
    done++;
    options.onProgress?.({ pass, passes: opts.iterations, done, total });
  }
  const { spec, weights } = state.spec();
  const table = buildTable(state, spec, weights, { seconds: (Date.now() - started) / 1000, pixelInput: model.pixelInput });
  return new Calibration(model, state, spec, weights, table);
}

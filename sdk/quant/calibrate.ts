/**
 * TI's Post Training Calibration on an ONNX graph (DESIGN.md §4).
 *
 * Per image, in sample order: the float model runs with the WASM statistics kernels reading
 * every PACT2 point as its step completes (no activation is copied); each image's range is
 * folded into the running average. Bias calibration (advanced presets) then compares, per
 * batch, the per-channel means of each weight layer's output in float and in the fixed-point
 * engine, and moves the float bias by factor * (mean_float - mean_fixed).
 *
 * Statistics are taken per image and merged in sample order, so that the result is the same
 * whether images are processed one by one or sharded across workers.
 */
import { fail } from '../errors.js';
import type { Inferred } from '../passes/infer.js';
import type { Graph, Node } from '../graph/ir.js';
import type { Model } from '../model.js';
import type { ConvParams } from '../ops/conv.js';
import { isWeightLayer, placePact2, type Placement } from './pact2.js';
import { DEFAULT_PERCENTILE, parseEstimator, RunningRange, tensorQ, type Estimator } from './ranges.js';
import type { BiasMode, Bits, QuantSpec, TensorQ } from '../device/spec.js';
import { analyzeWeights, quantizeWeights, weightScales, type QuantizedWeights, type WeightAnalysis } from './weights.js';
import { weightLayout } from '../ops/fixed.js';

export type Preset = 'simple' | 'advanced' | 'advanced-dw';
/** 'tidl' (default): compare the quantized outputs after the activation, factor / 10 during
 *  the first and last 10 % of updates. 'devkit': compare the layer's own output before its
 *  activation with the constant factor. */
export type BiasCalibration = 'tidl' | 'devkit';

export interface CalibrateOptions {
  preset?: Preset;
  bits?: Bits;
  /** Node or tensor names computed in 16 bits in an 8-bit model (mixed precision). */
  sixteenBit?: string[];
  /** Weight layers (node or output names) whose weights and bias are 16-bit while their
   *  activations keep the model's bits (TIDL's params_16bit_names_list). */
  sixteenBitWeights?: string[];
  /** Nodes kept in float (node names, output tensor names or op types; TIDL's deny_list): their
   *  weights are not quantized, the QDQ model has no Q/DQ on their weights or on their outputs
   *  that only float nodes read, and the fixed-point engine runs them as float fallback. */
  floatNodes?: string[];
  /** Overrides of the preset's rules (TIDL's accuracy_level 9 switches). */
  rules?: Partial<PresetRules>;
  /** TIDL's mixed_precision_factor: accepted and recorded; the automatic choice of 16-bit
   *  layers is not implemented yet (see the README). */
  mixedPrecision?: { factor: number };
  /** Passes over the samples (bias calibration continues across passes). */
  iterations?: number;
  /** Images per bias-calibration update. */
  batchSize?: number;
  biasCalibrationFactor?: number;
  biasCalibration?: BiasCalibration;
  /** Overrides the preset's range estimator: 'minmax', 'percentile:<p>', 'entropy', 'mse'. */
  estimator?: Estimator | string;
  biasMode?: BiasMode;
  /** Bin a stride-2 subsample of 4-D activations, as the devkit does (histogram estimators). */
  subsample?: boolean;
  /** Seeds the subsample's offsets (default 0). */
  seed?: number;
  onProgress?: (p: CalibrationProgress) => void;
}

export interface CalibrationProgress {
  pass: number;
  passes: number;
  /** Images done in this pass, and their total when the samples are an array. */
  done: number;
  total?: number;
}

export interface PresetRules {
  estimator: Estimator;
  clipWeights: boolean;
  biasCalibration: boolean;
  perChannelDepthwise: boolean;
}

/** The seed's presets (DESIGN.md §4 table). */
export const PRESETS: Record<Preset, PresetRules> = {
  simple: { estimator: { kind: 'minmax' }, clipWeights: false, biasCalibration: false, perChannelDepthwise: false },
  advanced: { estimator: { kind: 'percentile', percentile: DEFAULT_PERCENTILE }, clipWeights: true, biasCalibration: true, perChannelDepthwise: false },
  'advanced-dw': { estimator: { kind: 'percentile', percentile: DEFAULT_PERCENTILE }, clipWeights: false, biasCalibration: true, perChannelDepthwise: true },
};

export interface ResolvedOptions {
  preset: Preset;
  rules: PresetRules;
  bits: Bits;
  sixteenBit: Set<string>;
  sixteenBitWeights: Set<string>;
  floatNodes: Set<string>;
  mixedPrecision?: { factor: number };
  iterations: number;
  batchSize: number;
  factor: number;
  biasCalibration: BiasCalibration;
  biasMode: BiasMode;
  /** Seed of the stride-2 subsample, when subsampling. */
  subsampleSeed?: number;
}

/** At most this many passes over the samples: TIDL's own default is 50; beyond a thousand a run
 *  only burns time. */
export const MAX_ITERATIONS = 1000;

export function resolveOptions(o: CalibrateOptions): ResolvedOptions {
  const preset = o.preset ?? 'advanced';
  if (!(preset in PRESETS)) fail('BAD_OPTION', `unknown preset "${preset}" (simple, advanced, advanced-dw)`);
  const bits = o.bits ?? 8;
  if (bits !== 8 && bits !== 16) fail('BAD_OPTION', `bits must be 8 or 16, got ${bits}`);
  const positive = (v: number | undefined, d: number, name: string, max = Number.MAX_SAFE_INTEGER) => {
    const x = v ?? d;
    if (!Number.isInteger(x) || x < 1 || x > max) fail('BAD_OPTION', `${name} must be a positive integer${max < Number.MAX_SAFE_INTEGER ? ` (at most ${max})` : ''}, got ${v}`);
    return x;
  };
  const factor = o.biasCalibrationFactor ?? 0.05;
  if (!(factor >= 0 && factor <= 1)) fail('BAD_OPTION', `biasCalibrationFactor must be in [0, 1], got ${factor}`);
  const biasCalibration = o.biasCalibration ?? 'tidl';
  if (biasCalibration !== 'tidl' && biasCalibration !== 'devkit') fail('BAD_OPTION', `biasCalibration must be "tidl" or "devkit"`);
  const biasMode = o.biasMode ?? 'mma';
  if (biasMode !== 'mma' && biasMode !== 'int16') fail('BAD_OPTION', `biasMode must be "mma" or "int16"`);
  const estimator = o.estimator === undefined ? PRESETS[preset].estimator : typeof o.estimator === 'string' ? parseEstimator(o.estimator) : o.estimator;
  const rules = { ...PRESETS[preset], ...o.rules };
  if (o.mixedPrecision !== undefined && !(o.mixedPrecision.factor >= 1)) fail('BAD_OPTION', `mixedPrecision.factor must be at least 1, got ${o.mixedPrecision.factor}`);
  return {
    preset,
    rules: { ...rules, estimator: o.estimator === undefined && o.rules?.estimator ? o.rules.estimator : estimator },
    bits,
    sixteenBit: new Set(o.sixteenBit ?? []),
    sixteenBitWeights: new Set(o.sixteenBitWeights ?? []),
    floatNodes: new Set(o.floatNodes ?? []),
    ...(o.mixedPrecision ? { mixedPrecision: { factor: o.mixedPrecision.factor } } : {}),
    iterations: positive(o.iterations, 1, 'iterations', MAX_ITERATIONS),
    batchSize: positive(o.batchSize, 8, 'batchSize'),
    factor,
    biasCalibration,
    biasMode,
    subsampleSeed: o.subsample ? o.seed ?? 0 : undefined,
  };
}

/** One weight layer under calibration. */
export interface LayerState {
  node: Node;
  input: string;
  /** The layer's own output, and the tensor whose format it is stored in (after a fused activation). */
  output: string;
  stored: string;
  bits: Bits;
  depthwise: boolean;
  analysis: WeightAnalysis;
  /** The float bias being calibrated. */
  bias: Float32Array;
  /** Weight scale exponents, fixed once the input's format is known (freezeWeights). */
  scaleLog2?: number[];
  /** What max|W| alone gives, before the bias cap lowered any (set by freezeWeights). */
  scaleFromWeights?: number[];
  /** Output channels, and the per-channel stride layout of the output tensor. */
  channels: number;
}

/** The model-specific state of a calibration: placement, ranges, layers, biases. */
export class CalibrationState {
  readonly placement: Placement;
  readonly ranges = new Map<string, RunningRange>();
  readonly layers: LayerState[] = [];
  /** Names of the nodes kept in float (options.floatNodes resolved against the graph). */
  readonly floatNodes = new Set<string>();
  images = 0;

  constructor(readonly graph: Graph, readonly inferred: Inferred, readonly options: ResolvedOptions, readonly pixelInput = false) {
    this.placement = placePact2(graph, inferred);
    for (const p of this.placement.points) this.ranges.set(p, new RunningRange());
    for (const s of options.sixteenBit) {
      if (!inferred.values.has(s) && !graph.nodes.some((n) => n.name === s)) {
        fail('BAD_OPTION', `sixteenBit: "${s}" is neither a tensor nor a node of the model`);
      }
    }
    for (const [what, names] of [['sixteenBitWeights', options.sixteenBitWeights], ['floatNodes', options.floatNodes]] as const) {
      for (const s of names) {
        const hit = graph.nodes.filter((n) => n.name === s || n.outputs[0] === s || (what === 'floatNodes' && n.op === s));
        if (!hit.length) fail('BAD_OPTION', `${what}: "${s}" is neither a node, a node's output nor${what === 'floatNodes' ? ' an op type' : ''} of the model`);
        if (what === 'floatNodes') for (const n of hit) this.floatNodes.add(n.name);
      }
    }
    for (const node of inferred.order) {
      if (!isWeightLayer(node, inferred) || this.floatNodes.has(node.name)) continue;
      const w = inferred.values.get(node.inputs[1])!.value!;
      const out = node.outputs[0];
      const transB = node.op === 'Gemm' && !!node.attrs.transB?.value;
      const group = node.op === 'Conv' || node.op === 'ConvTranspose' ? (node.attrs.group?.value as number | undefined) ?? 1 : 1;
      const layout = weightLayout(node.op, w, transB, group);
      const conv = node.op === 'Conv' ? (inferred.compiled.get(node)!.params as ConvParams) : undefined;
      const depthwise = !!conv && conv.group > 1 && conv.group === conv.c && conv.m === conv.c;
      const perChannel = depthwise && options.rules.perChannelDepthwise;
      const biasInit = node.inputs[2] ? inferred.values.get(node.inputs[2])?.value : undefined;
      const bias = new Float32Array(layout.channels);
      if (biasInit) bias.set(biasInit.data.length === 1 ? new Array(layout.channels).fill(biasInit.data[0]) : biasInit.data);
      const stored = this.placement.formatOf.get(out) ?? out;
      const named = (set: Set<string>) => set.has(node.name) || set.has(out) || set.has(stored);
      const sixteen = named(options.sixteenBit) || named(options.sixteenBitWeights);
      this.layers.push({
        node, input: node.inputs[0], output: out, stored,
        bits: sixteen ? 16 : options.bits,
        depthwise,
        analysis: analyzeWeights(w, layout, perChannel, options.rules.clipWeights && !perChannel),
        bias,
        channels: layout.channels,
      });
    }
  }

  /**
   * Fix every layer's weight scales at their current value. Bias calibration then only moves
   * biases (a bias that outgrows its type saturates), so that the quantized weights the fixed
   * engine ran with are the ones exported.
   */
  freezeWeights(): void {
    const { scales, fromWeights } = this.formats();
    for (const l of this.layers) {
      l.scaleLog2 = scales.get(l);
      l.scaleFromWeights = fromWeights.get(l);
    }
  }

  /**
   * Set ranges and biases from a saved calibration table (see export/table.ts). The weight scales
   * were frozen after the first pass from the ranges and the model's own biases, so the saved ones
   * must be what these give: anything else was edited, or made for another model.
   */
  restore(ranges: Record<string, { range: [number, number] }>, layers: Record<string, { bias: number[]; weightScaleLog2: number[] }>): void {
    for (const [t, r] of this.ranges) {
      const saved = Object.hasOwn(ranges, t) ? ranges[t] : undefined;
      if (!saved) fail('BAD_INPUT', `the calibration has no range for tensor "${t}": it was made for another model`);
      [r.min, r.max] = saved.range;
      r.n = 1;
    }
    const { scales } = this.formats();
    for (const l of this.layers) {
      const saved = Object.hasOwn(layers, l.node.name) ? layers[l.node.name] : undefined;
      if (!saved || saved.bias.length !== l.bias.length) fail('BAD_INPUT', `the calibration has no bias for layer "${l.node.name}": it was made for another model`);
      if (saved.weightScaleLog2.length !== 1 && saved.weightScaleLog2.length !== l.bias.length) {
        fail('BAD_INPUT', `the calibration has ${saved.weightScaleLog2.length} weight scales for layer "${l.node.name}", which has ${l.bias.length} channels`);
      }
      const expected = scales.get(l)!;
      if (saved.weightScaleLog2.join() !== expected.join()) {
        fail('BAD_INPUT', `calibration.json: "layers.${l.node.name}.weightScaleLog2" is [${saved.weightScaleLog2}], but this model's weights and the saved ranges give [${expected}] (the file was edited, or made for another model)`);
      }
      l.bias.set(saved.bias);
      l.scaleLog2 = [...saved.weightScaleLog2];
    }
  }

  /** Bits of a stored tensor: the model's, or 16 where mixed precision asks for it. */
  private bitsOf(tensor: string): Bits {
    if (this.options.sixteenBit.has(tensor)) return 16;
    const producer = this.inferred.order.find((n) => n.outputs.includes(tensor));
    return producer && this.options.sixteenBit.has(producer.name) ? 16 : this.options.bits;
  }

  /**
   * Every point's format and every layer's weight scales for the current ranges and biases.
   * Walks the graph in order so that each layer sees its input's final format: a layer's output
   * scale cannot be finer than its accumulator scale (the shift n = in + w - out must be >= 0), so
   * it is lowered where needed.
   */
  private formats(): { tensors: Record<string, TensorQ>; scales: Map<LayerState, number[]>; fromWeights: Map<LayerState, number[]> } {
    const tensors: Record<string, TensorQ> = {};
    for (const p of this.placement.points) {
      const r = this.ranges.get(p)!;
      tensors[p] = this.pixelInput && this.graph.inputs.some((i) => i.name === p)
        ? { bits: 8, signed: false, scaleLog2: 0 } // raw pixels: exact as uint8
        : tensorQ(this.placement.unsigned.has(p) ? Math.max(0, r.min) : r.min, r.max, this.bitsOf(p));
    }
    const scales = new Map<LayerState, number[]>();
    const fromWeights = new Map<LayerState, number[]>();
    const resolve = (t: string) => this.placement.formatOf.get(t) ?? t;
    for (const l of this.layers) {
      const inQ = tensors[resolve(l.input)];
      let scaleLog2 = l.scaleLog2;
      if (!scaleLog2) {
        const w = weightScales(l.analysis, l.bias, inQ.scaleLog2, { bits: l.bits, biasMode: this.options.biasMode });
        scaleLog2 = w.scaleLog2;
        fromWeights.set(l, w.fromWeights);
      }
      scales.set(l, scaleLog2);
      const outQ = tensors[resolve(l.output)];
      const finest = inQ.scaleLog2 + Math.min(...scaleLog2);
      if (outQ.scaleLog2 > finest) tensors[resolve(l.output)] = { ...outQ, scaleLog2: finest };
    }
    for (const [t, src] of this.placement.formatOf) tensors[t] = tensors[src];
    return { tensors, scales, fromWeights };
  }

  /** The QuantSpec for the current ranges and biases, with the quantized weights. */
  spec(): { spec: QuantSpec; weights: Map<string, QuantizedWeights> } {
    const { tensors, scales } = this.formats();
    const weights = new Map<string, QuantizedWeights>();
    const layers: QuantSpec['layers'] = {};
    for (const l of this.layers) {
      const qw = quantizeWeights(l.analysis, scales.get(l)!, l.bits);
      weights.set(l.node.name, qw);
      layers[l.node.name] = { weights: qw.data, weightScaleLog2: qw.scaleLog2, bias: l.bias };
    }
    return { spec: { tensors, layers, biasMode: this.options.biasMode, ...(this.floatNodes.size ? { floatNodes: [...this.floatNodes] } : {}) }, weights };
  }
}

/** One calibration sample: feeds by input name, or a Float32Array for single-input models. */
export type Sample = Record<string, Float32Array> | Float32Array;
export type Samples = Iterable<Sample> | AsyncIterable<Sample>;

/** Split feeds carrying a batch of N into N single-image feeds. */
export function splitImages(model: Model, sample: Sample): Record<string, Float32Array>[] {
  const { record, batch } = model.feedsToRecord(sample);
  if (batch === 1) return [record];
  return Array.from({ length: batch }, (_, i) =>
    Object.fromEntries(Object.entries(record).map(([k, v]) => {
      const n = v.length / batch;
      return [k, v.subarray(i * n, (i + 1) * n)];
    })),
  );
}

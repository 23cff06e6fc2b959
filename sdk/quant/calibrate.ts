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
import { maxAbs } from '../ops/fixed.js';
import { movesData, opModule, weightFacts } from '../ops/index.js';
import type { LimitContext, ValueMeta } from '../ops/op.js';
import { isWeightLayer, outputFeeds, placePact2, type Placement } from './pact2.js';
import { DEFAULT_PERCENTILE, pact2Clip, parseEstimator, RANGE_BITS, RunningRange, tensorQ, type Estimator } from './ranges.js';
import { SENSITIVITY_IMAGES } from './mixed.js';
import { clipOf, layerBits, maxDeviceBias, maxShift, type BiasMode, type Bits, type QuantSpec, type TensorQ } from '../device/spec.js';
import {
  analyzeWeights, biasCapReason, channelStats, quantizeWeights, weightScales, type QuantizedWeights, type WeightAnalysis,
} from './weights.js';

export type Preset = 'simple' | 'advanced' | 'advanced-dw';
/** 'tidl' (default): compare the quantized outputs after the activation, factor / 10 during
 *  the first and last 10 % of updates. 'devkit': compare the layer's own output before its
 *  activation with the constant factor. */
export type BiasCalibration = 'tidl' | 'devkit';
/** How the ranges of model outputs (and the tensors feeding them) fold over images: 'peak'
 *  (default): their extremes, as the task reads their peaks; 'average': the running average, as
 *  every other point (and the devkit, everywhere). */
export type OutputRanges = 'peak' | 'average';

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
  /** TIDL's mixed_precision_factor: the inference cost allowed relative to all-8-bit; the tensors
   *  to compute in 16 bits are chosen by measured sensitivity within it (quant/mixed.ts, which
   *  states the cost model). 8-bit calibrations only. `images`: how many of the first
   *  calibration images the sensitivities are measured on (default SENSITIVITY_IMAGES). */
  mixedPrecision?: { factor: number; images?: number };
  /** Passes over the samples (bias calibration continues across passes). */
  iterations?: number;
  /** Images per bias-calibration update. */
  batchSize?: number;
  biasCalibrationFactor?: number;
  biasCalibration?: BiasCalibration;
  /** Overrides the preset's range estimator: 'minmax', 'percentile:<p>', 'entropy', 'mse'. */
  estimator?: Estimator | string;
  biasMode?: BiasMode;
  /** Saturate Relu6/Clip at their own bounds as well as at the PACT2 clip (default false: the
   *  seed's rule, a Clip(0,6) is a PACT2 clip whose power-of-2 range is learned; DESIGN.md §4). */
  keepClipBounds?: boolean;
  /** Cross-layer equalization before calibration (graph/equalize.ts); the exports carry the
   *  equalized weights. */
  equalize?: boolean;
  /** Bin a stride-2 subsample of 4-D activations, as the devkit does (histogram estimators). */
  subsample?: boolean;
  /** Seeds the subsample's offsets (default 0). */
  seed?: number;
  /** Ranges of the model outputs and the tensors feeding them: 'peak' (default) or 'average'. */
  outputRanges?: OutputRanges;
  /** Layers whose SQNR is below this (dB) get a verdict: default 12 at 8 bits, 30 at 16 bits. */
  verdictThreshold?: number;
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
  mixedPrecision?: { factor: number; images: number };
  iterations: number;
  batchSize: number;
  factor: number;
  biasCalibration: BiasCalibration;
  biasMode: BiasMode;
  keepClipBounds: boolean;
  equalize: boolean;
  /** Seed of the stride-2 subsample, when subsampling. */
  subsampleSeed?: number;
  outputRanges: OutputRanges;
  /** The user's verdict threshold (dB); by default VERDICT_THRESHOLD of each layer's bits. */
  verdictThreshold?: number;
}

/** At most this many passes over the samples: TIDL's own default is 50; beyond a thousand a run
 *  only burns time. */
export const MAX_ITERATIONS = 1000;

/** The default verdict thresholds (dB of SQNR, fixed against float) by a layer's bits. */
export const VERDICT_THRESHOLD = { 8: 12, 16: 30 } as const;

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
  const mp = o.mixedPrecision;
  if (mp !== undefined && !(typeof mp.factor === 'number' && mp.factor >= 1 && mp.factor <= 4)) fail('BAD_OPTION', `mixedPrecision.factor must be from 1 to 4 (all 16-bit), got ${mp.factor}`);
  if (mp !== undefined && bits === 16) fail('BAD_OPTION', 'mixedPrecision chooses 16-bit layers in an 8-bit calibration; with bits 16 every layer is 16-bit already');
  const outputRanges = o.outputRanges ?? 'peak';
  if (outputRanges !== 'peak' && outputRanges !== 'average') fail('BAD_OPTION', `outputRanges must be "peak" or "average", got "${outputRanges}"`);
  const verdictThreshold = o.verdictThreshold;
  if (verdictThreshold !== undefined && !Number.isFinite(verdictThreshold)) fail('BAD_OPTION', `verdictThreshold must be a number of dB, got ${verdictThreshold}`);
  return {
    preset,
    rules: { ...rules, estimator: o.estimator === undefined && o.rules?.estimator ? o.rules.estimator : estimator },
    bits,
    sixteenBit: new Set(o.sixteenBit ?? []),
    sixteenBitWeights: new Set(o.sixteenBitWeights ?? []),
    floatNodes: new Set(o.floatNodes ?? []),
    ...(mp ? { mixedPrecision: { factor: mp.factor, images: positive(mp.images, SENSITIVITY_IMAGES, 'mixedPrecision.images') } } : {}),
    iterations: positive(o.iterations, 1, 'iterations', MAX_ITERATIONS),
    batchSize: positive(o.batchSize, 8, 'batchSize'),
    factor,
    biasCalibration,
    biasMode,
    keepClipBounds: !!o.keepClipBounds,
    equalize: !!o.equalize,
    subsampleSeed: o.subsample ? o.seed ?? 0 : undefined,
    outputRanges,
    verdictThreshold,
  };
}

/** What the device's rules forced on a node's formats or weights (calibration.json "compromises"). */
export type CompromiseKind = 'output-scale-lowered' | 'output-scale-raised' | 'weight-scale-lowered' | 'weights-zeroed';

export interface Compromise {
  kind: CompromiseKind;
  /** The tensor whose format moved (output scales). */
  tensor?: string;
  /** The output channels concerned, for per-channel weight scales; absent: the whole layer. */
  channels?: number[];
  /** The scale exponent (log2) before and after. */
  from?: number;
  to?: number;
  reason: string;
}

/** The formats of a calibration and what it took to make the engine accept them. */
export interface Formats {
  tensors: Record<string, TensorQ>;
  scales: Map<LayerState, number[]>;
  /** What max|W| alone gives, for the layers whose scales were chosen in this call. */
  fromWeights: Map<LayerState, number[]>;
  /** By node name, in graph order. */
  compromises: Map<string, Compromise[]>;
  /** Nodes without integer arithmetic for their inputs: they run as float fallback. */
  fallbacks: Node[];
  /** Points whose clip comes from their op's known output range, with that range. */
  known: Map<string, [number, number]>;
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
  /** What max|W| alone gives, before the bias cap or the shift range lowered any (set by freezeWeights). */
  scaleFromWeights?: number[];
  /** What choosing them took (bias type, shift range), recorded when they were fixed. */
  weightCompromises?: Compromise[];
  /** Output channels, and the per-channel stride layout of the output tensor. */
  channels: number;
}

/** The model-specific state of a calibration: placement, ranges, layers, biases. */
export class CalibrationState {
  readonly placement: Placement;
  /** Per point, its running ranges at each of RANGE_BITS (8, 16). */
  readonly ranges = new Map<string, RunningRange[]>();
  readonly layers: LayerState[] = [];
  /** Names of the nodes kept in float (options.floatNodes resolved against the graph). */
  readonly floatNodes = new Set<string>();
  /** Points folded by their extremes rather than averaged (outputRanges 'peak'). */
  readonly peaks: Set<string>;
  /** Points mixed precision raised to 16 bits (setMixedPrecision). */
  readonly mixed = new Set<string>();
  /** Weight layers (node names) mixed precision gave 16-bit weights with their activations kept
   *  at the model's bits (setMixedPrecision). */
  readonly mixedWeights = new Set<string>();
  /** Layers whose weights the options name 16-bit. */
  private readonly named16 = new Set<LayerState>();
  /** Each layer's weight analysis at a bit width (the clipping rule depends on it). */
  private readonly analyze = new Map<LayerState, (bits: Bits) => WeightAnalysis>();
  /** For every point, the names of the nodes that compute it (an op and its fused activation). */
  private readonly computedBy = new Map<string, string[]>();
  images = 0;

  constructor(readonly graph: Graph, readonly inferred: Inferred, readonly options: ResolvedOptions, readonly pixelInput = false) {
    this.placement = placePact2(graph, inferred);
    this.peaks = options.outputRanges === 'peak' ? outputFeeds(graph, inferred, this.placement) : new Set();
    for (const p of this.placement.points) this.ranges.set(p, RANGE_BITS.map((b) => new RunningRange(this.peaks.has(p) || b === 16)));
    for (const node of inferred.order) {
      for (const o of node.outputs) {
        const p = o && this.placement.formatOf.get(o);
        if (!p || (p !== o && movesData(node))) continue;
        this.computedBy.set(p, [...(this.computedBy.get(p) ?? []), node.name]);
      }
    }
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
      const params = inferred.compiled.get(node)!.params;
      const layout = weightFacts(node)!.layout(params, w);
      const conv = node.op === 'Conv' ? (params as ConvParams) : undefined;
      const depthwise = !!conv && conv.group > 1 && conv.group === conv.c && conv.m === conv.c;
      const perChannel = depthwise && options.rules.perChannelDepthwise;
      const biasInit = node.inputs[2] ? inferred.values.get(node.inputs[2])?.value : undefined;
      const bias = new Float32Array(layout.channels);
      if (biasInit) bias.set(biasInit.data.length === 1 ? new Array(layout.channels).fill(biasInit.data[0]) : biasInit.data);
      const stored = this.placement.formatOf.get(out) ?? out;
      const named = (set: Set<string>) => set.has(node.name) || set.has(out) || set.has(stored);
      const sixteen = named(options.sixteenBit) || named(options.sixteenBitWeights);
      const bits = sixteen ? 16 : options.bits;
      const analyze = (b: Bits) => analyzeWeights(w, layout, perChannel, options.rules.clipWeights && !perChannel, b);
      const layer: LayerState = { node, input: node.inputs[0], output: out, stored, bits, depthwise, analysis: analyze(bits), bias, channels: layout.channels };
      this.layers.push(layer);
      this.analyze.set(layer, analyze);
      if (sixteen) this.named16.add(layer);
    }
  }

  /** Compute these points, and the weights of the layers storing them, in 16 bits besides what
   *  the options name, and the weights of the layers named in `weights` (before freezeWeights:
   *  the weight scales follow the bits). */
  setMixedPrecision(points: Iterable<string>, weights: Iterable<string> = []): void {
    this.mixed.clear();
    for (const p of points) this.mixed.add(p);
    this.mixedWeights.clear();
    for (const n of weights) this.mixedWeights.add(n);
    for (const l of this.layers) {
      const bits = this.named16.has(l) || this.mixed.has(l.stored) || this.mixedWeights.has(l.node.name) ? 16 : this.options.bits;
      // The weights' clip is chosen for the bits they are quantized with (weightClip).
      if (bits !== l.bits && this.options.rules.clipWeights) l.analysis = this.analyze.get(l)!(bits);
      l.bits = bits;
    }
  }

  /**
   * Fix every layer's weight scales at their current value. Bias calibration then only moves
   * biases (a bias that outgrows its type saturates), so that the quantized weights the fixed
   * engine ran with are the ones exported.
   */
  freezeWeights(): void {
    const { scales, fromWeights, compromises } = this.formats();
    for (const l of this.layers) {
      l.scaleLog2 = scales.get(l);
      l.scaleFromWeights = fromWeights.get(l);
      l.weightCompromises = (compromises.get(l.node.name) ?? []).filter((c) => c.kind === 'weight-scale-lowered' || c.kind === 'weights-zeroed');
    }
  }

  /** A point's range at the bits it is stored in. */
  rangeOf(point: string): RunningRange {
    return this.ranges.get(point)![RANGE_BITS.indexOf(this.bitsOf(point))];
  }

  /**
   * Set ranges and biases from a saved calibration table (see export/table.ts). The weight scales
   * were frozen after the first pass from the ranges and the model's own biases, so the saved ones
   * must be what these give: anything else was edited, or made for another model.
   */
  restore(ranges: Record<string, { range: [number, number]; extremes?: [number, number] }>, layers: Record<string, { bias: number[]; weightScaleLog2: number[] }>): void {
    for (const t of this.ranges.keys()) {
      const saved = Object.hasOwn(ranges, t) ? ranges[t] : undefined;
      if (!saved) fail('BAD_INPUT', `the calibration has no range for tensor "${t}": it was made for another model`);
      const r = this.rangeOf(t);
      [r.min, r.max] = saved.range;
      r.seen = saved.extremes ? [...saved.extremes] : [...saved.range];
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

  /** Bits of a stored tensor: the model's, or 16 where mixed precision names it or a node
   *  computing it, or chose it. */
  bitsOf(tensor: string): Bits {
    const names = [tensor, ...(this.computedBy.get(tensor) ?? [])];
    return this.mixed.has(tensor) || names.some((n) => this.options.sixteenBit.has(n)) ? 16 : this.options.bits;
  }

  /** The nodes computing a point (an op and the activation fused into it), in graph order. */
  producersOf(point: string): string[] {
    return this.computedBy.get(point) ?? [];
  }

  /**
   * A point's format: the PACT2 clip of its statistics (signed where they are negative, or where
   * a value seen would round below 0 on the unsigned grid), widened to its op's known output
   * range where the statistics' clip would cut values seen (`known` gets the points widened).
   */
  private pointFormat(p: string, opRange: [number, number] | undefined, known: Map<string, [number, number]>): TensorQ {
    const r = this.rangeOf(p);
    const bits = this.bitsOf(p);
    const [seenMin, seenMax] = r.seen[0] <= r.seen[1] ? r.seen : [r.min, r.max];
    let lo = r.min, hi = r.max;
    if (this.placement.unsigned.has(p)) lo = Math.max(0, lo);
    else if (lo >= 0 && seenMin < 0) {
      const step = pact2Clip(0, hi).clip2 / 2 ** bits;
      if (seenMin < -step / 2) lo = Math.max(seenMin, -Math.abs(hi));
    }
    let q = tensorQ(lo, hi, bits);
    const [cl, ch] = clipOf(q);
    if (opRange && (seenMax > ch || seenMin < cl)) {
      known.set(p, opRange);
      q = tensorQ(Math.min(lo, opRange[0]), Math.max(hi, opRange[1]), bits);
    }
    return q;
  }

  /**
   * Every point's format and every layer's weight scales for the current ranges and biases, in
   * a form the fixed-point engine accepts whatever the statistics. Walks the graph in order so
   * that each node sees its inputs' final formats, and moves an output scale into the interval
   * the node's integer arithmetic takes (ScaleLimits: e.g. no finer than a Mul's product or a
   * layer's accumulator, since the device's shift cannot be negative), recording each move.
   */
  formats(): Formats {
    const opRanges = new Map<string, [number, number]>();
    for (const node of this.inferred.order) {
      const range = opModule(node)?.outputRange?.(this.inferred.compiled.get(node)!.params);
      const p = range && this.placement.formatOf.get(node.outputs[0]);
      if (p) opRanges.set(p, range);
    }
    const known = new Map<string, [number, number]>();
    const tensors: Record<string, TensorQ> = {};
    for (const p of this.placement.points) {
      tensors[p] = this.pixelInput && this.graph.inputs.some((i) => i.name === p)
        ? { bits: 8, signed: false, scaleLog2: 0 } // raw pixels: exact as uint8
        : this.pointFormat(p, opRanges.get(p), known);
    }
    const scales = new Map<LayerState, number[]>();
    const fromWeights = new Map<LayerState, number[]>();
    const compromises = new Map<string, Compromise[]>();
    const note = (node: string, c: Compromise) => compromises.set(node, [...(compromises.get(node) ?? []), c]);
    const fallbacks: Node[] = [];
    const resolve = (t: string) => this.placement.formatOf.get(t) ?? t;
    const isRuntime = (t: string) => !!t && !this.inferred.values.get(t)?.value;
    const layerOf = new Map(this.layers.map((l) => [l.node, l]));
    for (const node of this.inferred.order) {
      if (!node.outputs.some(isRuntime)) continue;
      const l = layerOf.get(node);
      if (l) {
        scales.set(l, this.weightLayer(l, tensors, resolve, (c) => note(node.name, c), (w) => fromWeights.set(l, w)));
        continue;
      }
      const outs = [...new Set(node.outputs.filter(isRuntime).map(resolve))];
      const ctx: LimitContext<unknown> = {
        node, params: this.inferred.compiled.get(node)!.params,
        inputs: node.inputs.map((i) => (i ? this.inferred.values.get(i) : undefined)) as (ValueMeta | undefined)[],
        inQ: node.inputs.map((i) => (isRuntime(i) ? tensors[resolve(i)] : undefined)),
        outQ: outs.map((o) => tensors[o]),
      };
      const limits = this.floatNodes.has(node.name) ? undefined : opModule(node)?.fixed?.limits?.(ctx);
      if (!limits) {
        fallbacks.push(node);
        continue;
      }
      for (const o of outs) {
        const q = tensors[o];
        if (limits.finest !== undefined && q.scaleLog2 > limits.finest) {
          tensors[o] = { ...q, scaleLog2: limits.finest };
          note(node.name, { kind: 'output-scale-lowered', tensor: o, from: q.scaleLog2, to: limits.finest, reason: limits.finestReason! });
        } else if (limits.coarsest !== undefined && q.scaleLog2 < limits.coarsest) {
          tensors[o] = { ...q, scaleLog2: limits.coarsest };
          note(node.name, { kind: 'output-scale-raised', tensor: o, from: q.scaleLog2, to: limits.coarsest, reason: limits.coarsestReason! });
        }
      }
    }
    for (const [t, src] of this.placement.formatOf) tensors[t] = tensors[src];
    return { tensors, scales, fromWeights, compromises, fallbacks, known };
  }

  /**
   * A weight layer's weight scales, and its output format lowered where needed: the output scale
   * no finer than the accumulator (shift n = in + w - out >= 0), and each weight scale no finer
   * than the largest shift its accumulator takes (a dead or denormal channel's scale runs away:
   * its weights quantize to 0 either way) or than keeps its sums inside the word, whatever bias
   * calibration makes of the bias.
   */
  private weightLayer(
    l: LayerState, tensors: Record<string, TensorQ>, resolve: (t: string) => string, note: (c: Compromise) => void, onChosen: (fromWeights: number[]) => void,
  ): number[] {
    const inQ = tensors[resolve(l.input)];
    const key = resolve(l.output);
    let w: number[];
    if (l.scaleLog2) {
      w = [...l.scaleLog2];
      for (const c of l.weightCompromises ?? []) note(c);
    } else {
      const ws = weightScales(l.analysis, l.bias, inQ.scaleLog2, {
        bits: l.bits, biasMode: this.options.biasMode, signedInput: inQ.signed, unsignedOutput: !tensors[key].signed,
      });
      w = ws.scaleLog2;
      onChosen(ws.fromWeights);
      for (const c of byChange(w.length, (g) => w[g] < ws.fromWeights[g], (g) => ws.fromWeights[g], (g) => w[g])) {
        note({ kind: 'weight-scale-lowered', ...c, reason: biasCapReason(l.bits, this.options.biasMode) });
      }
    }
    const chosen = [...w];
    const from = tensors[key].scaleLog2;
    let outQ = tensors[key];
    const perChannel = w.length > 1;
    const why: string[] = [];
    for (;;) {
      const finest = inQ.scaleLog2 + Math.min(...w);
      if (outQ.scaleLog2 > finest) outQ = { ...outQ, scaleLog2: finest };
      const bits = layerBits(inQ.bits, outQ.bits, l.bits);
      const stats = channelStats(l.analysis, w, l.bits);
      const bias = maxDeviceBias(bits, this.options.biasMode, inQ);
      let changed = false;
      for (let g = 0; g < w.length; g++) {
        const sums = perChannel ? stats.absSum[g] : Math.max(...stats.absSum);
        const nMax = maxShift(bits, sums * maxAbs(inQ) + bias);
        if (nMax < 0) {
          w[g]--;
          why[g] = `the sums of products must fit the ${bits === 8 ? 'int32' : 'int64'} accumulator`;
          changed = true;
        } else if (inQ.scaleLog2 + w[g] - outQ.scaleLog2 > nMax) {
          w[g] = outQ.scaleLog2 - inQ.scaleLog2 + nMax;
          why[g] ??= `the shift n = in + w - out may not exceed ${nMax} (input 2^${inQ.scaleLog2}, output 2^${outQ.scaleLog2})`;
          changed = true;
        }
      }
      if (!changed) break;
    }
    if (outQ.scaleLog2 < from) {
      tensors[key] = outQ;
      note({
        kind: 'output-scale-lowered', tensor: key, from, to: outQ.scaleLog2,
        reason: `the accumulator scale 2^${inQ.scaleLog2 + Math.min(...w)} (input 2^${inQ.scaleLog2} x weights 2^${Math.min(...w)}): the device cannot shift left`,
      });
    }
    for (const reason of new Set(why.filter(Boolean))) {
      for (const c of byChange(w.length, (g) => w[g] < chosen[g] && why[g] === reason, (g) => chosen[g], (g) => w[g])) note({ kind: 'weight-scale-lowered', ...c, reason });
    }
    if (perChannel && !l.scaleLog2) {
      const stats = channelStats(l.analysis, w, l.bits);
      for (const c of byChange(w.length, (g) => stats.maxAbs[g] > 0 && !stats.nonzero[g])) {
        note({ kind: 'weights-zeroed', ...c, reason: 'every weight of the channel is below half a step of the finest grid its shift allows' });
      }
    }
    return w;
  }

  /** The QuantSpec for the current ranges and biases, with the quantized weights and what it took. */
  spec(): { spec: QuantSpec; weights: Map<string, QuantizedWeights>; formats: Formats } {
    const formats = this.formats();
    const weights = new Map<string, QuantizedWeights>();
    const layers: QuantSpec['layers'] = {};
    for (const l of this.layers) {
      const qw = quantizeWeights(l.analysis, formats.scales.get(l)!, l.bits);
      weights.set(l.node.name, qw);
      layers[l.node.name] = { weights: qw.data, weightScaleLog2: qw.scaleLog2, bias: l.bias };
    }
    const floatNodes = this.floatNodes.size ? { floatNodes: [...this.floatNodes] } : {};
    return {
      spec: { tensors: formats.tensors, layers, biasMode: this.options.biasMode, keepClipBounds: this.options.keepClipBounds, ...floatNodes },
      weights, formats,
    };
  }
}

/**
 * The groups g < count where `hit(g)`, gathered by their (from, to) pair: one entry per pair, with
 * its channels when the layer has per-channel scales (count > 1).
 */
function byChange(count: number, hit: (g: number) => boolean, from?: (g: number) => number, to?: (g: number) => number) {
  const out = new Map<string, { channels?: number[]; from?: number; to?: number }>();
  for (let g = 0; g < count; g++) {
    if (!hit(g)) continue;
    const key = `${from?.(g)}:${to?.(g)}`;
    let e = out.get(key);
    if (!e) out.set(key, (e = { ...(count > 1 ? { channels: [] } : {}), from: from?.(g), to: to?.(g) }));
    e.channels?.push(g);
  }
  return [...out.values()];
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

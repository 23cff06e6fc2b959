/**
 * calibration.json: everything a user (or TIDL tooling) needs to read the calibration and to
 * rebuild it exactly: per tensor its observed range, PACT2 clip, scale, bits and signedness; per
 * layer its shift(s), weight scale(s), bias form and calibrated float bias.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { fail } from '../errors.js';
import { check, isRecord } from '../guard.js';
import type { StepRecord } from '../engine/fixed.js';
import type { PixelAffine } from '../passes/transforms.js';
import { PRESETS, VERDICT_THRESHOLD, type CalibrationState, type Compromise, type Formats } from '../quant/calibrate.js';
import type { Verdict } from '../quant/diagnose.js';
import type { MixedPrecisionReport } from '../quant/mixed.js';
import { estimatorName } from '../quant/ranges.js';
import { clipOf, deviceBias, type QuantSpec } from '../device/spec.js';
import { biasCapReason, type QuantizedWeights } from '../quant/weights.js';
import type { Provenance } from './provenance.js';

export interface TensorEntry {
  range: [number, number];
  /** The smallest and largest values seen over the images (what a clip of `range` may cut). */
  extremes: [number, number];
  clip: [number, number];
  scale: number;
  scaleLog2: number;
  bits: number;
  signed: boolean;
  /** SQNR (dB) of the fixed-point tensor against the float one, on the calibration samples. */
  sqnr?: number;
  /** The op's known output range, which the clip covers (Sigmoid, Softmax [0, 1], Tanh [-1, 1]). */
  knownRange?: [number, number];
  /** The range is the extremes over the images (a model output or what feeds it), not their average. */
  peak?: true;
}

export interface LayerEntry {
  op: string;
  input: string;
  output: string;
  weightBits: number;
  weightScale: number[];
  weightScaleLog2: number[];
  /** Right shift n = in + w - out of the requantization, per output channel group. */
  shift: number[];
  weightClip?: number;
  biasMode: string;
  biasA?: number[];
  biasB?: number[];
  /** The calibrated float bias. */
  bias: number[];
  sqnr?: number;
}

export interface CalibrationTable {
  format: 'p2calib-calibration';
  version: 1;
  preset: string;
  estimator: string;
  bits: number;
  /** Nodes and tensors computed in 16 bits (mixed precision). */
  sixteenBit: string[];
  biasCalibration: string;
  biasMode: string;
  /** Relu6/Clip saturate at their own bounds too (else only at the PACT2 clip, the seed's rule). */
  keepClipBounds: boolean;
  /** Consecutive layers were equalized before calibration (the exports carry those weights). */
  equalize: boolean;
  /** The seed of the devkit's stride-2 subsample of 4-D activations, when it was used. */
  subsampleSeed: number | null;
  /** Present when set: nodes kept in float, layers with 16-bit weights only, and the preset's
   *  rules as overridden (what loadCalibration needs beyond the preset to rebuild the weights). */
  floatNodes?: string[];
  sixteenBitWeights?: string[];
  rules?: { clipWeights: boolean; biasCalibration: boolean; perChannelDepthwise: boolean };
  images: number;
  /** pixels: the exported models take raw 0..255 pixels and apply `affine` themselves. */
  input: { pixels: boolean; affine?: PixelAffine };
  /** How the ranges of model outputs and what feeds them fold over the images: 'peak' or 'average'. */
  outputRanges?: string;
  tensors: Record<string, TensorEntry>;
  layers: Record<string, LayerEntry>;
  /** How the calibration was made (absent in files written before it existed). */
  provenance?: Provenance;
  /** Every fixed-point step's integers, by its first node, in execution order: enough, with the
   *  quantized weights of model.qdq.onnx, to recompute each layer's output integers from its
   *  inputs' (see README, "calibration.json"). */
  integers?: Record<string, StepIntegersEntry>;
  /** By node name: what the device's rules forced on its formats or weights, with the reason. */
  compromises?: Record<string, Compromise[]>;
  /** Nodes without documented integer arithmetic: dequantize, float reference, requantize. */
  fallbacks?: { node: string; op: string }[];
  /** Automatic mixed precision (mixedPrecision option): the budget, the cost, the layers chosen
   *  and the gain measured. Its tensors are in sixteenBit. */
  mixedPrecision?: MixedPrecisionReport;
  /** Verdicts on the layers below their SQNR threshold (dB, by bits). */
  diagnostics?: { thresholds: Record<string, number>; verdicts: Verdict[] };
  /** "sha256:<hex>" of the file's other content (written by tableJson). */
  integrity?: string;
}

/** A step's record, with, for weight layers, how their weights were quantized. */
export interface StepIntegersEntry extends StepRecord {
  weights?: {
    /** The clip the weight-clipping rule applied (|w| <= clip before quantizing), or null. */
    clip: number | null;
    /** The scale exponents max|W| alone gives, before any lowering. */
    scaleLog2FromWeights: number[];
    /** Why a weight scale is below scaleLog2FromWeights (null when none is). */
    lowered: string | null;
  };
}

/** The "integers" section from the fixed-point plan's steps and the calibration's weight layers. */
export function integersSection(steps: Record<string, StepRecord>, state: CalibrationState, weights: Map<string, QuantizedWeights>): Record<string, StepIntegersEntry> {
  const out: Record<string, StepIntegersEntry> = {};
  const layers = new Map(state.layers.map((l) => [l.node.name, l]));
  for (const [name, step] of Object.entries(steps)) {
    const l = layers.get(name);
    const qw = weights.get(name);
    if (!l || !qw) {
      out[name] = step;
      continue;
    }
    const from = l.scaleFromWeights ?? qw.scaleLog2;
    const reasons = [...new Set((l.weightCompromises ?? []).filter((c) => c.kind === 'weight-scale-lowered').map((c) => c.reason))];
    const lowered = qw.scaleLog2.some((e, g) => e < from[g]) ? reasons.join('; ') || biasCapReason(l.bits, state.options.biasMode) : null;
    out[name] = { ...step, weights: { clip: qw.clippedTo ?? null, scaleLog2FromWeights: from, lowered } };
  }
  return out;
}

export function buildTable(
  state: CalibrationState, spec: QuantSpec, weights: Map<string, QuantizedWeights>,
  extra: { sqnr?: Map<string, number>; pixelInput?: PixelAffine; formats?: Formats; verdicts?: Verdict[]; mixed?: MixedPrecisionReport },
): CalibrationTable {
  const o = state.options;
  const tensors: Record<string, TensorEntry> = {};
  for (const p of state.placement.points) {
    const q = spec.tensors[p];
    const r = state.rangeOf(p);
    tensors[p] = {
      range: [r.min, r.max], extremes: r.n ? r.seen : [r.min, r.max], clip: clipOf(q), scale: 2 ** q.scaleLog2, scaleLog2: q.scaleLog2, bits: q.bits, signed: q.signed,
      ...(extra.sqnr?.has(p) ? { sqnr: extra.sqnr.get(p) } : {}),
      ...(extra.formats?.known.has(p) ? { knownRange: extra.formats.known.get(p) } : {}),
      ...(state.peaks.has(p) ? { peak: true as const } : {}),
    };
  }
  const layers: Record<string, LayerEntry> = {};
  for (const l of state.layers) {
    const qw = weights.get(l.node.name)!;
    const inQ = spec.tensors[l.input];
    const outQ = spec.tensors[l.output];
    const mma = l.bits === 8 && spec.biasMode === 'mma';
    const forms = Array.from(l.bias, (b, c) => deviceBias(b, inQ.scaleLog2, qw.scaleLog2[qw.scaleLog2.length > 1 ? c : 0], l.bits, spec.biasMode, inQ.signed));
    layers[l.node.name] = {
      op: l.node.op,
      input: l.input,
      output: l.stored,
      weightBits: l.bits,
      weightScale: qw.scaleLog2.map((e) => 2 ** e),
      weightScaleLog2: qw.scaleLog2,
      shift: qw.scaleLog2.map((e) => inQ.scaleLog2 + e - outQ.scaleLog2),
      ...(qw.clippedTo !== undefined ? { weightClip: qw.clippedTo } : {}),
      biasMode: l.bits === 16 ? 'int32' : spec.biasMode,
      ...(mma ? { biasA: forms.map((f) => f.biasA!), biasB: forms.map((f) => f.biasB!) } : {}),
      bias: Array.from(l.bias),
      ...(extra.sqnr?.has(l.stored) ? { sqnr: extra.sqnr.get(l.stored) } : {}),
    };
  }
  return {
    format: 'p2calib-calibration',
    version: 1,
    preset: o.preset,
    estimator: estimatorName(o.rules.estimator),
    bits: o.bits,
    // What mixed precision chose, by point name: loadCalibration rebuilds it from the list.
    sixteenBit: [...o.sixteenBit, ...[...state.mixed].filter((p) => !o.sixteenBit.has(p))],
    biasCalibration: o.rules.biasCalibration ? o.biasCalibration : 'off',
    biasMode: o.biasMode,
    keepClipBounds: o.keepClipBounds,
    equalize: o.equalize,
    subsampleSeed: o.subsampleSeed ?? null,
    ...(state.floatNodes.size ? { floatNodes: [...state.floatNodes] } : {}),
    // With the layers mixed precision gave 16-bit weights only: loadCalibration rebuilds them from it.
    ...(o.sixteenBitWeights.size || state.mixedWeights.size
      ? { sixteenBitWeights: [...o.sixteenBitWeights, ...[...state.mixedWeights].filter((n) => !o.sixteenBitWeights.has(n))] } : {}),
    ...(Object.entries(PRESETS[o.preset]).some(([k, v]) => k !== 'estimator' && o.rules[k as keyof typeof o.rules] !== v)
      ? { rules: { clipWeights: o.rules.clipWeights, biasCalibration: o.rules.biasCalibration, perChannelDepthwise: o.rules.perChannelDepthwise } } : {}),
    images: state.images,
    input: extra.pixelInput ? { pixels: true, affine: extra.pixelInput } : { pixels: false },
    outputRanges: o.outputRanges,
    tensors,
    layers,
    compromises: Object.fromEntries(extra.formats?.compromises ?? []),
    fallbacks: (extra.formats?.fallbacks ?? []).map((n) => ({ node: n.name, op: n.op })),
    ...(extra.mixed ? { mixedPrecision: extra.mixed } : {}),
    diagnostics: {
      thresholds: o.verdictThreshold === undefined ? { ...VERDICT_THRESHOLD } : { 8: o.verdictThreshold, 16: o.verdictThreshold },
      verdicts: extra.verdicts ?? [],
    },
  };
}

/** The field of calibration.json that holds the hash of the rest of its content. */
export const INTEGRITY_FIELD = 'integrity';

const MAX_DEPTH = 64;

/** A JSON value's canonical text: object keys sorted, no white space, values as JSON writes them;
 *  the same for any key order or layout of the file. */
function canonicalJson(v: unknown, depth = 0): string {
  if (depth > MAX_DEPTH) fail('BAD_INPUT', `calibration.json: values nest deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(v)) return `[${v.map((x) => canonicalJson(x, depth + 1)).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k], depth + 1)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** "sha256:<hex>" of a parsed calibration.json's canonical text, without its integrity field:
 *  every field counts, whichever fields a version of p2calib writes. */
export function tableHash(json: Record<string, unknown>): string {
  const { [INTEGRITY_FIELD]: _, ...content } = json;
  return `sha256:${bytesToHex(sha256(utf8ToBytes(canonicalJson(content))))}`;
}

/** calibration.json's text, the same bytes wherever it is written (Node, browser), ending with
 *  the hash of its content (checked by loadCalibration). */
export function tableJson(table: CalibrationTable): string {
  check(isRecord(table), 'tableJson', 'give a calibration table (calibration.table)');
  // The hash is taken over the values as they read back from the text (undefined fields gone,
  // Infinity as null), which is what a reader checks.
  const content = JSON.parse(JSON.stringify(table)) as Record<string, unknown>;
  delete content[INTEGRITY_FIELD];
  return `${JSON.stringify({ ...content, [INTEGRITY_FIELD]: tableHash(content) }, null, 1)}\n`;
}

/** Refuse a table whose recorded hash does not match its content. A table without one (built in
 *  memory) passes; readCalibration requires it of files. */
export function checkTableHash(json: Record<string, unknown>): void {
  const recorded = json[INTEGRITY_FIELD];
  if (recorded === undefined) return;
  if (typeof recorded !== 'string' || recorded !== tableHash(json)) {
    fail('BAD_INPUT', `calibration.json was modified after p2calib wrote it: its content does not match its "${INTEGRITY_FIELD}" hash (recalibrate rather than edit it)`);
  }
}

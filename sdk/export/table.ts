/**
 * calibration.json: everything a user (or TIDL tooling) needs to read the calibration and to
 * rebuild it exactly: per tensor its observed range, PACT2 clip, scale, bits and signedness; per
 * layer its shift(s), weight scale(s), bias form and calibrated float bias.
 */
import type { PixelAffine } from '../graph/transforms.js';
import type { CalibrationState } from '../quant/calibrate.js';
import { estimatorName } from '../quant/ranges.js';
import { clipOf, deviceBias, type QuantSpec } from '../quant/spec.js';
import type { QuantizedWeights } from '../quant/weights.js';

export interface TensorEntry {
  range: [number, number];
  clip: [number, number];
  scale: number;
  scaleLog2: number;
  bits: number;
  signed: boolean;
  /** SQNR (dB) of the fixed-point tensor against the float one, on the calibration samples. */
  sqnr?: number;
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
  images: number;
  /** pixels: the exported models take raw 0..255 pixels and apply `affine` themselves. */
  input: { pixels: boolean; affine?: PixelAffine };
  tensors: Record<string, TensorEntry>;
  layers: Record<string, LayerEntry>;
}

export function buildTable(
  state: CalibrationState, spec: QuantSpec, weights: Map<string, QuantizedWeights>,
  extra: { sqnr?: Map<string, number>; pixelInput?: PixelAffine },
): CalibrationTable {
  const o = state.options;
  const tensors: Record<string, TensorEntry> = {};
  for (const p of state.placement.points) {
    const q = spec.tensors[p];
    const r = state.rangeOf(p);
    tensors[p] = {
      range: [r.min, r.max], clip: clipOf(q), scale: 2 ** q.scaleLog2, scaleLog2: q.scaleLog2, bits: q.bits, signed: q.signed,
      ...(extra.sqnr?.has(p) ? { sqnr: extra.sqnr.get(p) } : {}),
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
    sixteenBit: [...o.sixteenBit],
    biasCalibration: o.rules.biasCalibration ? o.biasCalibration : 'off',
    biasMode: o.biasMode,
    keepClipBounds: o.keepClipBounds,
    equalize: o.equalize,
    subsampleSeed: o.subsampleSeed ?? null,
    images: state.images,
    input: extra.pixelInput ? { pixels: true, affine: extra.pixelInput } : { pixels: false },
    tensors,
    layers,
  };
}

/** calibration.json's text, the same bytes wherever it is written (Node, browser). */
export function tableJson(table: CalibrationTable): string {
  return `${JSON.stringify(table, null, 1)}\n`;
}

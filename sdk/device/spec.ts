/**
 * The contract between calibration and the fixed-point engine: everything the device needs to
 * run a graph in power-of-2 fixed point (DESIGN.md §5). Calibration produces a QuantSpec; the
 * fixed-point engine executes the prepared float graph under it, bit-exactly as the device does.
 *
 * Conventions
 * - Every scale is a power of two and is stored as its base-2 logarithm: a real value x is held
 *   as the integer q = x * 2^scaleLog2 (so scaleLog2 = 5 means 1/32 per step). Zero points are 0.
 * - Rounding helpers below are the device's: float-to-fixed rounds half away from zero; the
 *   requantizing shift adds 2^(n-1) and shifts arithmetically (half rounds toward +inf).
 */

import { floorLog2 } from '../util/math.js';

export type Bits = 8 | 16;

/** How a runtime tensor is stored on the device. */
export interface TensorQ {
  bits: Bits;
  /** int8/int16 when true, uint8/uint16 when false. */
  signed: boolean;
  /** q = x * 2^scaleLog2. */
  scaleLog2: number;
}

/**
 * How the 8-bit MMA adds the bias. 'mma' (default, what TIDL does on C7x): the bias is an int16
 * at the weight scale, multiplied by the input scale factor through the biasA(int8) * biasB
 * split of deviceBias(). 'int16': the bias is one int16 at the accumulator scale s_in*s_w.
 * 16-bit layers always use a plain int32 bias at the accumulator scale.
 */
export type BiasMode = 'mma' | 'int16';

/** A layer with constant weights: Conv, ConvTranspose, Gemm, MatMul with a constant operand. */
export interface LayerQ {
  /** Weights quantized in the op's ONNX layout (int8 in 8-bit layers, int16 in 16-bit). */
  weights: Int8Array | Int16Array;
  /** log2 of the weight scale: one value (per tensor) or one per output channel. */
  weightScaleLog2: number[];
  /** The float bias (calibrated), one per output channel; the engine converts it to the device
   *  form with deviceBias() so that bias calibration only edits floats. */
  bias: Float32Array;
}

export interface QuantSpec {
  /** Every runtime tensor of the prepared graph (model inputs and outputs included). */
  tensors: Record<string, TensorQ>;
  /** Keyed by node name. */
  layers: Record<string, LayerQ>;
  biasMode: BiasMode;
  /**
   * false (default, the seed's rule, DESIGN.md §4): a Relu6/Clip is a PACT2 clip; the device
   * saturates only at its output type's limits (a Clip(0,6) whose range rounds up to 8 saturates
   * at 8·255/256). true: it also saturates at the Clip's own bounds (6·2^s), as p2calib did first.
   */
  keepClipBounds?: boolean;
  /** Nodes kept in float: the engine runs them as float fallback whatever their op. */
  floatNodes?: string[];
}

// ---- the device's arithmetic, in plain code ----

/** Round half away from zero (float-to-fixed on the device; weight quantization). */
export function roundHalfAway(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

export function qRange(bits: Bits, signed: boolean): [number, number] {
  const levels = 2 ** bits;
  return signed ? [-levels / 2, levels / 2 - 1] : [0, levels - 1];
}

export function saturate(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/** Float to fixed for a tensor (the model input, float-fallback outputs). */
export function quantizeValue(x: number, q: TensorQ): number {
  const [lo, hi] = qRange(q.bits, q.signed);
  return saturate(roundHalfAway(x * 2 ** q.scaleLog2), lo, hi);
}

/**
 * Round-shift: (acc + 2^(n-1)) >> n with an arithmetic shift, for n >= 0; a left shift for
 * n < 0. Exact for |acc| < 2^53 (accumulators are int32 in 8-bit mode, int64 in 16-bit).
 */
export function roundShift(acc: number, n: number): number {
  if (n <= 0) return acc * 2 ** -n;
  return Math.floor((acc + 2 ** (n - 1)) / 2 ** n);
}

export interface DeviceBias {
  /** The integer added to the accumulator (at scale 2^(in + w)). */
  value: number;
  /** The 8-bit MMA split, when biasMode is 'mma' in an 8-bit layer. */
  biasA?: number;
  biasB?: number;
}

/** The MMA bias's biasB bound: 255, or 127 for a signed input. */
export function mmaBiasB(signedInput: boolean): number {
  return signedInput ? 127 : 255;
}

/**
 * The bias as the device adds it, for one output channel with float bias b, input scale
 * 2^inLog2 and weight scale 2^wLog2.
 *   16-bit layers:  value = sat32(round(b * 2^(in + w))).
 *   8-bit 'int16':  value = sat16(round(b * 2^(in + w))).
 *   8-bit 'mma':    bias = sat16(round(b * 2^w)) is held at the weight scale and brought to the
 *     accumulator scale by the input scale factor f = 2^in through biasA(int8) * biasB, biasB at
 *     most 255 (127 for a signed input):
 *       f > biasB_max: biasA = clamp(trunc(sat16(bias * f) / biasB_max), -128, 127), biasB = biasB_max
 *       1 < f <= biasB_max: biasA = bias, biasB = f
 *       f <= 1: biasA = bias * f (truncated), biasB = 1.
 */
export function deviceBias(b: number, inLog2: number, wLog2: number, bits: Bits, mode: BiasMode, signedInput: boolean): DeviceBias {
  if (bits === 16) return { value: saturate(roundHalfAway(b * 2 ** (inLog2 + wLog2)), -(2 ** 31), 2 ** 31 - 1) };
  const [lo16, hi16] = qRange(16, true);
  if (mode === 'int16') return { value: saturate(roundHalfAway(b * 2 ** (inLog2 + wLog2)), lo16, hi16) };
  const bias = saturate(roundHalfAway(b * 2 ** wLog2), lo16, hi16);
  const f = 2 ** inLog2;
  const bMax = mmaBiasB(signedInput);
  let biasA: number, biasB: number;
  if (f > bMax) {
    biasA = saturate(Math.trunc(saturate(bias * f, lo16, hi16) / bMax), -128, 127);
    biasB = bMax;
  } else if (f > 1) {
    biasA = bias;
    biasB = f;
  } else {
    biasA = Math.trunc(bias * f);
    biasB = 1;
  }
  return { value: biasA * biasB, biasA, biasB };
}

/** The real interval a tensor format covers: its PACT2 clip, (-clip2, clip2) or (0, clip2). */
export function clipOf(q: TensorQ): [number, number] {
  const clip2 = 2 ** ((q.signed ? q.bits - 1 : q.bits) - q.scaleLog2);
  return [q.signed ? -clip2 : 0, clip2];
}

// ---- rules the fixed-point engine applies (DESIGN.md §5), one function per rule ----

export type QType = 'uint8' | 'int8' | 'uint16' | 'int16';

/** The element type a tensor has on the device. */
export function qType(q: TensorQ): QType {
  return q.bits === 8 ? (q.signed ? 'int8' : 'uint8') : q.signed ? 'int16' : 'uint16';
}

export function sameFormat(a: TensorQ, b: TensorQ): boolean {
  return a.bits === b.bits && a.signed === b.signed && a.scaleLog2 === b.scaleLog2;
}

/** Fixed to float: x = q / 2^scaleLog2 (exact in float64). */
export function dequantizeValue(v: number, q: TensorQ): number {
  return v * 2 ** -q.scaleLog2;
}

/**
 * Internal fractional bits of the integer ops that combine inputs of different scales: the
 * accumulator sits at 2^(out + F), F = eltwise 6/14, concat 7/15 (8-bit / 16-bit); the average
 * pools' reciprocal 1/count is held with F = 8/12 fractional bits.
 */
export const FRACTION_BITS = {
  eltwise: { 8: 6, 16: 14 },
  concat: { 8: 7, 16: 15 },
  avgPool: { 8: 8, 16: 12 },
} as const;

/**
 * The word a layer computes in: int32 when every operand is 8-bit, int64 otherwise. The engine
 * proves at plan time that no accumulator (plus its rounding term) can leave this bound, so the
 * plain-number references here equal the device's fixed-width words; int64 layers are bounded
 * by 2^53, far inside int64, where float64 arithmetic is still exact.
 */
export function accumulatorLimit(bits: Bits): number {
  return bits === 8 ? 2 ** 31 - 1 : 2 ** 53;
}

/**
 * The largest requantizing right shift a layer takes when its accumulator is bounded by `bound`
 * (bias included): the rounding term 2^(n-1) must keep it inside the word, and the shift must stay
 * within the word's shift range (31 for int32, 62 for int64). -1 when `bound` alone leaves the word.
 */
export function maxShift(bits: Bits, bound: number): number {
  const room = accumulatorLimit(bits) - bound;
  if (room < 0) return -1;
  return Math.min(bits === 8 ? 31 : 62, room < 1 ? 0 : floorLog2(room) + 1);
}

/** The largest integer factor a rescale or element-wise kernel takes (an int32 argument). */
export const MAX_FACTOR = 2 ** 31 - 1;

/** A layer runs in 16-bit mode (int64 accumulator, int32 bias) when any operand is 16-bit. */
export function layerBits(...operands: Bits[]): Bits {
  return operands.includes(16) ? 16 : 8;
}

/**
 * The requantizing shift of a layer: n = in + w - out (scale exponents). The device cannot shift
 * left here, so calibration must guarantee out <= in + w for every output channel (DESIGN.md
 * §5: s_out = accScale / 2^n with n >= 0); the engine rejects a spec that breaks it.
 */
export function layerShift(inLog2: number, wLog2: number, outLog2: number): number {
  return inLog2 + wLog2 - outLog2;
}

/**
 * Saturation bounds of an output in its integer domain: the type's range, narrowed by a fused
 * activation's own bounds when the spec keeps them (keepClipBounds). ReLU is the saturation at 0;
 * Clip(min, max) saturates at its bounds converted to fixed point like any float (round half away
 * from zero) at the output scale.
 */
export function saturationBounds(q: TensorQ, clip?: { min: number; max: number }): [number, number] {
  let [lo, hi] = qRange(q.bits, q.signed);
  if (clip) {
    const s = 2 ** q.scaleLog2;
    if (clip.min > -Infinity) lo = Math.max(lo, Math.min(hi, roundHalfAway(clip.min * s)));
    if (clip.max < Infinity) hi = Math.min(hi, Math.max(lo, roundHalfAway(clip.max * s)));
  }
  return [lo, hi];
}

/**
 * The integer factor that brings an input at scale 2^inLog2 to an accumulator at 2^accLog2:
 * k = trunc(2^(accLog2 - inLog2)). An input finer than the accumulator gets k = 0 (its values
 * are below one accumulator step), as the device's truncation gives.
 */
export function rescaleFactor(inLog2: number, accLog2: number): number {
  return Math.trunc(2 ** (accLog2 - inLog2));
}

/**
 * Move a tensor between two formats (pass-through ops whose input and output formats differ, a
 * standalone Relu/Clip): an exact power-of-2 change of scale, y = sat(roundShift(x * k, n)) with
 * k = 2^max(0, to - from) and n = max(0, from - to).
 */
export function formatShift(from: TensorQ, to: TensorQ): { k: number; n: number } {
  const d = from.scaleLog2 - to.scaleLog2;
  return { k: d < 0 ? 2 ** -d : 1, n: Math.max(0, d) };
}

/**
 * Average pooling: the window sum times 1/count, the reciprocal held with F = 8 (12) significant
 * bits: m = roundHalfAway(2^(F+s) / count) with s = floor(log2 count), so that m lies in
 * (2^(F-1), 2^F]; out = sat(roundShift(sum * m, F + s + in - out)). Exact when count is a power of
 * 2; otherwise within 2^-F of 1/count (a 7x7 global pool in 8-bit: m = 167 at shift 13, 0.1 %
 * high). Read as fraction bits of 1/count alone (m = round(2^F / count)) a 33x33 global pool
 * would get m = 0 and output zeros, which no device does; hence significant bits.
 */
export function avgPoolMultiplier(count: number, bits: Bits): { m: number; shift: number } {
  const shift = FRACTION_BITS.avgPool[bits] + Math.max(0, floorLog2(count));
  return { m: roundHalfAway(2 ** shift / count), shift };
}

/**
 * The largest |value| deviceBias() can return for an input format: what bias calibration may grow
 * a bias to, so that a layer whose shift leaves room for it never leaves its word.
 */
export function maxDeviceBias(bits: Bits, mode: BiasMode, inQ: TensorQ): number {
  if (bits === 16) return 2 ** 31;
  if (mode === 'int16') return 2 ** 15;
  const f = 2 ** inQ.scaleLog2, bMax = mmaBiasB(inQ.signed);
  return f > bMax ? 128 * bMax : f > 1 ? 2 ** 15 * f : 2 ** 15;
}

/** The device bias of every output channel (value at the accumulator scale 2^(in + w_c)). */
export function deviceBiases(bias: ArrayLike<number>, channels: number, inQ: TensorQ, wLog2: (c: number) => number, bits: Bits, mode: BiasMode): Int32Array {
  const out = new Int32Array(channels);
  for (let c = 0; c < channels; c++) out[c] = deviceBias(c < bias.length ? bias[c] : 0, inQ.scaleLog2, wLog2(c), bits, mode, inQ.signed).value;
  return out;
}

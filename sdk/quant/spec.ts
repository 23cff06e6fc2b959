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
 * split of splitBiasMma(). 'int16': the bias is one int16 at the accumulator scale s_in*s_w.
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
  const bMax = signedInput ? 127 : 255;
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

/**
 * Weight quantization (DESIGN.md §4): symmetric power-of-2 scales, per tensor or per output
 * channel, the seed's weight-clipping rule, and the cap TIDL puts on the weight scale so that
 * the bias fits its type.
 */
import type { Tensor } from '../graph/ir.js';
import type { WeightLayout } from '../ops/op.js';
import { ceilLog2, floorLog2 } from '../util/math.js';
import { remembered } from '../util/memo.js';
import { mmaBiasB, qRange, roundHalfAway, saturate, type BiasMode, type Bits } from '../device/spec.js';

export interface WeightQuantOptions {
  bits: Bits;
  biasMode: BiasMode;
  /** The input is signed (the MMA bias's biasB is then at most 127, else 255). */
  signedInput?: boolean;
  /** The output is unsigned (a fused Relu): a channel it zeroes either way needs no exact bias. */
  unsignedOutput?: boolean;
}

export interface QuantizedWeights {
  data: Int8Array | Int16Array;
  scaleLog2: number[];
  /** The clip applied by the weight-clipping rule, if it fired. */
  clippedTo?: number;
}

/**
 * The seed's rule: if max|W| > 15 and max|W| > 16 * median|W|, clip W to
 * ±2^ceil(log2 min(max|W|, 16 * median|W|)) * 120/128. It is an 8-bit rule: there one outlier's
 * power of 2 costs every other weight bits it cannot spare. At 16 bits the clip must pay for itself:
 * it is kept only where it lowers the weights' quantization error (clipping plus rounding, on the
 * grid each choice gives). Returns the clip value or undefined.
 */
export function weightClip(w: ArrayLike<number>, bits: Bits = 8): number | undefined {
  let max = 0;
  for (let i = 0; i < w.length; i++) {
    const a = Math.abs(w[i]);
    if (a > max) max = a;
    else if (a !== a) return undefined; // NaN: no clip, as NaN > 15 is false
  }
  if (!(max > 15)) return undefined; // most layers: no median needed
  const abs = Float64Array.from(w, Math.abs).sort();
  const median = abs.length % 2 ? abs[(abs.length - 1) >> 1] : (abs[abs.length / 2 - 1] + abs[abs.length / 2]) / 2;
  if (!(max > 16 * median)) return undefined;
  const clip = 2 ** ceilLog2(Math.min(max, 16 * median)) * (120 / 128);
  if (bits === 8) return clip;
  return quantizationError(w, clip, bits) < quantizationError(w, max, bits) ? clip : undefined;
}

/** Squared error of W clipped to ±c and quantized per tensor on the power-of-2 grid c gives. */
function quantizationError(w: ArrayLike<number>, c: number, bits: Bits): number {
  const scale = 2 ** (bits - 1 - ceilLog2(c));
  const [lo, hi] = qRange(bits, true);
  let err = 0;
  for (let i = 0; i < w.length; i++) err += (w[i] - saturate(roundHalfAway(saturate(w[i], -c, c) * scale), lo, hi) / scale) ** 2;
  return err;
}

/** What weight quantization needs from a layer's float weights; computed once per layer. */
export interface WeightAnalysis {
  layout: WeightLayout;
  /** The weights after clipping. */
  values: ArrayLike<number>;
  /** max|W| per tensor (one entry) or per output channel. */
  maxAbs: Float64Array;
  clippedTo?: number;
}

/** `clip`: apply the clipping rule, at the layer's `bits`. */
export function analyzeWeights(w: Tensor, layout: WeightLayout, perChannel: boolean, clip: boolean, bits: Bits = 8): WeightAnalysis {
  const clippedTo = clip ? weightClip(w.data, bits) : undefined;
  const values = clippedTo === undefined ? w.data : Float32Array.from(w.data, (v) => saturate(v, -clippedTo, clippedTo));
  const maxAbs = new Float64Array(perChannel ? layout.channels : 1);
  for (let i = 0; i < values.length; i++) {
    const g = perChannel ? layout.channelOf(i) : 0;
    maxAbs[g] = Math.max(maxAbs[g], Math.abs(values[i]));
  }
  return { layout, values, maxAbs, clippedTo };
}

/**
 * Power-of-2 weight scales: 2^(bits-1) / 2^ceil(log2 max|W|), lowered where the bias would not
 * fit its type. `inLog2` is the input's scale exponent (the bias cap depends on it in 'int16'
 * mode and in 16-bit layers).
 */
export function weightScales(
  a: WeightAnalysis, bias: ArrayLike<number>, inLog2: number, opts: WeightQuantOptions,
): { scaleLog2: number[]; biasCapped: boolean; fromWeights: number[] } {
  const perChannel = a.maxAbs.length > 1;
  const maxBias = new Float64Array(a.maxAbs.length);
  for (let c = 0; c < bias.length; c++) {
    const g = perChannel ? c : 0;
    maxBias[g] = Math.max(maxBias[g], Math.abs(bias[c]));
  }
  // Bias bound: 'mma' keeps an int16 at the weight scale, 'int16' at the accumulator scale,
  // 16-bit layers an int32 at the accumulator scale. Where the input scale factor 2^in exceeds
  // biasB's bound, the MMA form is biasA(int8) x biasB at the accumulator scale (deviceBias): the
  // int16 at the weight scale fits and still saturates there. With per-channel scales the bound is
  // that product's: a channel pays for its own bias. A per-tensor 8-bit MMA scale is a trade
  // (perTensorMmaScale): every channel's weight bits against the biases that saturate.
  const product = opts.bits === 8 && opts.biasMode === 'mma' && 2 ** inLog2 > mmaBiasB(!!opts.signedInput);
  const biasLimit = opts.bits === 16 ? 2 ** 31 - 1 : product ? 128 * mmaBiasB(!!opts.signedInput) - 1 : 32767;
  const biasShift = opts.bits === 16 || opts.biasMode === 'int16' || product ? inLog2 : 0;
  const fromWeights = Array.from(a.maxAbs, (m) => opts.bits - 1 - ceilLog2(Math.max(m, 2 ** -24)));
  const scaleLog2 = !perChannel && opts.bits === 8 && opts.biasMode === 'mma'
    ? [perTensorMmaScale(a, bias, inLog2, fromWeights[0], opts, (w) => biasLimit / 2 ** (biasShift + w))]
    : fromWeights.map((w, g) => (maxBias[g] === 0 ? w : Math.min(w, floorLog2(biasLimit / maxBias[g]) - biasShift)));
  return { scaleLog2, biasCapped: scaleLog2.some((w, g) => w < fromWeights[g]), fromWeights };
}

/**
 * A per-tensor weight scale for the 8-bit MMA bias: lowering it by one step quadruples every
 * channel's rounding noise, while a bias past the form's bound (the int16 at the weight scale, and
 * the biasA x biasB product where the input factor exceeds biasB) saturates its own channel. The
 * scale is the one of least estimated error, down to the one that fits every bias: per output,
 * rounding noise fan_in * E[x^2] * 4^-w / 12, with E[x^2] taken at its largest (x uniform over the
 * input's clip, so bits are given up only where a saturation clearly costs more), against each
 * bias's squared excess. A channel whose output a Relu zeroes either way costs nothing: a
 * negative bias that still saturates below -sum|W_c| * max|x| (a dead channel's, after BatchNorm
 * folding) leaves its outputs at 0, so it does not take bits from the others.
 */
function perTensorMmaScale(
  a: WeightAnalysis, bias: ArrayLike<number>, inLog2: number, fromWeights: number, opts: WeightQuantOptions,
  /** The largest |bias| the form holds at weight scale 2^w. */
  limit: (w: number) => number,
): number {
  const inMax = 2 ** ((opts.signedInput ? 7 : 8) - inLog2);
  const channels = a.layout.channels;
  const absSum = new Float64Array(channels);
  for (let i = 0; i < a.values.length; i++) absSum[a.layout.channelOf(i)] += Math.abs(a.values[i]);
  const harmless = (c: number, w: number) => !!opts.unsignedOutput && bias[c] < 0 && absSum[c] * inMax <= limit(w);
  const noise = (a.values.length / channels) * (inMax * inMax / 3) / 12;
  let best = fromWeights;
  let bestCost = Infinity;
  for (let w = fromWeights; w > fromWeights - 64; w--) {
    let cost = channels * noise * 4 ** -w;
    let fits = true;
    for (let c = 0; c < bias.length; c++) {
      const over = Math.abs(bias[c]) - limit(w);
      if (over <= 0 || harmless(c, w)) continue;
      cost += over * over;
      fits = false;
    }
    if (cost < bestCost) [best, bestCost] = [w, cost];
    if (fits) break;
  }
  return best;
}

/** Why weightScales() lowered a scale below what max|W| gives: the bias cap of the layer's form. */
export function biasCapReason(bits: Bits, biasMode: BiasMode): string {
  if (bits === 16) return 'the bias must fit an int32 at the accumulator scale 2^(in + w) (16-bit layer)';
  return biasMode === 'int16'
    ? 'the bias must fit an int16 at the accumulator scale 2^(in + w) (bias mode int16)'
    : 'the bias must fit TIDL\'s MMA form: an int16 at the weight scale 2^w, brought to the accumulator by biasA(int8) x biasB (per-channel scales, where the input scale exceeds biasB: the product bounds it)';
}

/** Per output channel, at given weight scales: max|W| in float, sum |q| and whether any q is nonzero. */
export interface ChannelStats {
  maxAbs: Float64Array;
  absSum: Float64Array;
  nonzero: Uint8Array;
}

export function channelStats(a: WeightAnalysis, scaleLog2: number[], bits: Bits): ChannelStats {
  return remembered(statsMemo, a, memoKey(scaleLog2, bits), MEMO_SIZE, () => computeChannelStats(a, scaleLog2, bits));
}

function computeChannelStats(a: WeightAnalysis, scaleLog2: number[], bits: Bits): ChannelStats {
  const [lo, hi] = qRange(bits, true);
  const channels = a.layout.channels;
  const out: ChannelStats = { maxAbs: new Float64Array(channels), absSum: new Float64Array(channels), nonzero: new Uint8Array(channels) };
  const scales = scaleLog2.map((e) => 2 ** e);
  for (let i = 0; i < a.values.length; i++) {
    const c = a.layout.channelOf(i);
    const v = a.values[i];
    const q = Math.abs(saturate(roundHalfAway(v * scales[scaleLog2.length > 1 ? c : 0]), lo, hi));
    out.maxAbs[c] = Math.max(out.maxAbs[c], Math.abs(v));
    out.absSum[c] += q;
    if (q) out.nonzero[c] = 1;
  }
  return out;
}

/** Weights on their power-of-2 grid: trunc(w * scale + 0.5 * sign(w)), saturated. */
export function quantizeWeights(a: WeightAnalysis, scaleLog2: number[], bits: Bits): QuantizedWeights {
  return remembered(quantizedMemo, a, memoKey(scaleLog2, bits), MEMO_SIZE, () => computeQuantized(a, scaleLog2, bits));
}

function computeQuantized(a: WeightAnalysis, scaleLog2: number[], bits: Bits): QuantizedWeights {
  const [lo, hi] = qRange(bits, true);
  const n = a.values.length;
  const data = bits === 16 ? new Int16Array(n) : new Int8Array(n);
  const scales = scaleLog2.map((e) => 2 ** e);
  const channelOf = scaleLog2.length > 1 ? a.layout.channelOf : () => 0;
  for (let i = 0; i < n; i++) data[i] = saturate(roundHalfAway(a.values[i] * scales[channelOf(i)]), lo, hi);
  return { data, scaleLog2: [...scaleLog2], clippedTo: a.clippedTo };
}

/** The last few results per weight analysis and (bits, scales): mixed precision's sensitivity pass
 *  derives a spec for every candidate, and most layers keep their weights from one to the next. */
const MEMO_SIZE = 4;
const statsMemo = new WeakMap<WeightAnalysis, Map<string, ChannelStats>>();
const quantizedMemo = new WeakMap<WeightAnalysis, Map<string, QuantizedWeights>>();
const memoKey = (scaleLog2: number[], bits: Bits) => `${bits}:${scaleLog2.join(',')}`;

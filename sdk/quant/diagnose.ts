/**
 * Verdicts on the layers a calibration leaves below a SQNR threshold: for each, its most likely
 * cause, from what was measured (the error a clip accounts for, weight channels lost to a
 * per-tensor scale, input scales an Add has to reconcile, a float fallback, an output scale the
 * device's rules lowered, or an input that is already degraded), and the remedy the tool offers.
 */
import { qRange, type TensorQ } from '../device/spec.js';
import type { Node } from '../graph/ir.js';
import { activationClip } from '../ops/index.js';
import type { Clip } from '../ops/op.js';
import { ceilLog2, log10, sqnrDb } from '../util/math.js';
import { estimatorName } from './ranges.js';
import { VERDICT_THRESHOLD, type CalibrationState, type Formats, type LayerState } from './calibrate.js';
import { channelStats, quantizeWeights } from './weights.js';

/** Per point, what the last calibration pass measured of its fixed-point values against float. */
export interface PointError {
  /** Sum of f^2 and of (f - q)^2 over the calibration images. */
  signal: number;
  noise: number;
  /** Values beyond the format's range, and the part of the noise they make (squared excess). */
  clipped: number;
  clipNoise: number;
  /** Values measured (elements times images). */
  count: number;
}

export type Cause =
  /** The weights quantize badly: channels that all quantize to 0 or keep few levels (channel
   *  ranges spanning 2^spanLog2 under one per-tensor scale), or a low SQNR of the weights themselves. */
  | { kind: 'weights'; text: string; channels: number; zeroed: number; fewLevels: number; spanLog2: number; perChannel: boolean; weightSqnr: number }
  /** The preset's weight-clipping rule cut weights (in `channels` channels) at ±clip. */
  | { kind: 'weight-clip'; text: string; clip: number; clipped: number; channels: number; weightSqnr: number }
  /** The format's range cuts values: `clipped` % of them, making `errorShare` % of the error. */
  | { kind: 'clip'; text: string; clipped: number; errorShare: number }
  /** An Add/Sub whose inputs' scales differ by 2^bits. */
  | { kind: 'add-scales'; text: string; bits: number; inputs: string[] }
  /** The output scale was lowered where the device's rules forced it (calibration.json "compromises"). */
  | { kind: 'scale-lowered'; text: string; bits: number }
  | { kind: 'fallback'; text: string }
  /** The seed's rule leaves a Relu6/Clip's own bound (`bound`) to the format, which saturates at
   *  `limit` (TIDL's power-of-2 mode): float values reach the bound, so fixed point passes values
   *  the float model cuts there. */
  | { kind: 'clip-bounds'; text: string; node: string; bound: number; limit: number }
  /** Its input is already below the threshold (and has a verdict of its own). */
  | { kind: 'inherited'; text: string; tensor: string; node: string; sqnr: number }
  /** A product (Mul, MatMul of activations) of inputs above the threshold multiplies their relative errors. */
  | { kind: 'product'; text: string; inputs: string[]; sqnr: number }
  /** None of the above: its values span few steps of its format (RMS in steps), and rounding to
   *  them accounts for its SQNR. */
  | { kind: 'rounding'; text: string; rmsSteps: number }
  /** None of the above: it loses `loss` dB against its input, more than rounding its output to its
   *  grid would (`roundingSqnr`, from its values' RMS in steps): it amplifies its input's error. */
  | { kind: 'arithmetic'; text: string; loss: number; roundingSqnr: number; input: string }
  /** Its input's producer lost channels to its weight scale(s): the tensor's SQNR hides them,
   *  being dominated by the channels kept, but this layer reads them. */
  | { kind: 'input-channels'; text: string; layer: string; zeroed: number; fewLevels: number; channels: number; perChannel: boolean };

export interface Remedy {
  kind: 'preset' | 'estimator' | 'sixteen-bit' | 'clip-bounds' | 'upstream' | 'none';
  /** The CLI option to try (SDK: the option of the same name), when there is one. */
  option?: string;
  text: string;
}

export interface Verdict {
  /** The first node computing the tensor, and all of them (an op and its fused activation). */
  node: string;
  nodes: string[];
  op: string;
  tensor: string;
  bits: number;
  sqnr: number;
  /** The lowest SQNR of its runtime inputs, where measured. */
  inputSqnr?: number;
  threshold: number;
  cause: Cause;
  remedy: Remedy;
}

const pct = (x: number) => Math.round(x * 1000) / 10;

/** The verdicts of every point below its threshold, in graph order. */
export function diagnose(state: CalibrationState, formats: Formats, errors: Map<string, PointError>): Verdict[] {
  const o = state.options;
  const inputs = new Set(state.graph.inputs.map((i) => i.name));
  const nodes = new Map(state.inferred.order.map((n) => [n.name, n]));
  const layers = new Map<string, LayerState>(state.layers.map((l) => [l.node.name, l]));
  const fallback = new Set(formats.fallbacks.map((n) => n.name));
  const resolve = (t: string) => state.placement.formatOf.get(t) ?? t;
  const isRuntime = (t: string) => !!t && !state.inferred.values.get(t)?.value;
  const sqnrOf = (p: string) => {
    const e = errors.get(p);
    return e && e.signal > 0 ? sqnrDb(e.signal, e.noise) : undefined;
  };
  const verdicts: Verdict[] = [];
  for (const p of state.placement.points) {
    const e = errors.get(p);
    // A model input is the device's data layer: its clip and grid are its own.
    const names = inputs.has(p) ? [p] : state.producersOf(p);
    if (!e || !(e.signal > 0) || !names.length) continue;
    const q = formats.tensors[p];
    const threshold = o.verdictThreshold ?? VERDICT_THRESHOLD[q.bits];
    const sqnr = sqnrDb(e.signal, e.noise);
    if (sqnr >= threshold) continue;
    const node = nodes.get(names[0]) ?? { name: p, op: 'Input', inputs: [] as string[] };
    const feeds = [...new Set(node.inputs.filter(isRuntime).map(resolve))];
    const measured = feeds.map((t) => ({ t, db: sqnrOf(t) })).filter((x): x is { t: string; db: number } => x.db !== undefined);
    const worst = measured.sort((a, b) => a.db - b.db)[0];
    const inherited = (): Extract<Cause, { kind: 'inherited' }> => ({
      kind: 'inherited', tensor: worst.t, node: state.producersOf(worst.t)[0] ?? worst.t, sqnr: worst.db,
      text: `its input "${worst.t}" is already at ${worst.db.toFixed(1)} dB`,
    });
    const clipShare = e.noise > 0 ? e.clipNoise / e.noise : 0;
    const clip = (): Cause => ({
      kind: 'clip', clipped: pct(e.clipped / e.count), errorShare: pct(clipShare),
      text: `its clip [${formatClip(q)}] cuts ${pct(e.clipped / e.count)} % of the values, ${pct(clipShare)} % of the error`,
    });
    const l = layers.get(node.name);
    const weights = l && weightCause(l, formats, threshold, state);
    const lostUpstream = (): Cause | undefined => {
      for (const t of feeds) {
        const up = state.producersOf(t).map((n) => layers.get(n)).find(Boolean);
        const c = up && weightCause(up, formats, -Infinity, state);
        if (up && c?.kind === 'weights' && c.zeroed + c.fewLevels > 0) {
          return {
            kind: 'input-channels', layer: up.node.name, zeroed: c.zeroed, fewLevels: c.fewLevels, channels: c.channels, perChannel: c.perChannel,
            text: `it reads channels its input's layer "${up.node.name}" lost to its ${c.perChannel ? 'per-channel' : 'per-tensor'} weights (${c.text})`,
          };
        }
      }
      return undefined;
    };
    const lowered = (formats.compromises.get(node.name) ?? []).find((c) => c.kind === 'output-scale-lowered' && c.tensor === p);
    const ins = node.inputs.filter(isRuntime).map((t) => formats.tensors[resolve(t)]);
    const spread = (node.op === 'Add' || node.op === 'Sub') && ins.length === 2 ? Math.abs(ins[0].scaleLog2 - ins[1].scaleLog2) : 0;
    const leftBound = boundLeft(state, names.map((n) => nodes.get(n)), p, q);
    let cause: Cause;
    if (worst && worst.db < threshold && sqnr >= worst.db - 3) cause = inherited();
    else if (clipShare >= 0.5) cause = clip();
    else if (weights) cause = weights;
    else if (spread >= 3) {
      cause = {
        kind: 'add-scales', bits: spread, inputs: node.inputs.filter(isRuntime),
        text: `its inputs' scales differ by 2^${spread} (2^${ins[0].scaleLog2} and 2^${ins[1].scaleLog2}): the smaller input keeps ${spread} bits fewer on the sum's grid`,
      };
    } else if (lostUpstream()) {
      cause = lostUpstream()!;
    } else if (lowered && lowered.from! - lowered.to! >= 2) {
      cause = { kind: 'scale-lowered', bits: lowered.from! - lowered.to!, text: `its output scale was lowered from 2^${lowered.from} to 2^${lowered.to}: ${lowered.reason}` };
    } else if (fallback.has(node.name) && worst) {
      cause = {
        kind: 'fallback',
        text: `it runs as float fallback (no documented device arithmetic) and turns its input's ${worst.db.toFixed(1)} dB into ${sqnr.toFixed(1)} dB`,
      };
    } else if (clipShare >= 0.2) cause = clip();
    else if (worst && worst.db < threshold) cause = inherited();
    else if (leftBound) cause = leftBound;
    else if (worst && (node.op === 'Mul' || node.op === 'MatMul')) {
      // A product's own rounding is its output's; what it does is multiply its inputs' relative errors.
      cause = {
        kind: 'product', inputs: feeds, sqnr: worst.db,
        text: `the product multiplies its inputs' relative errors (its inputs are at ${measured.map((m) => m.db.toFixed(1)).join(' and ')} dB)`,
      };
    } else {
      // Rounding to a grid adds noise of step^2 / 12: what the values' RMS in steps allows.
      const rms = Math.sqrt(e.signal / e.count) * 2 ** q.scaleLog2;
      const roundingSqnr = 20 * log10(rms) + 10 * log10(12);
      cause = !worst || sqnr >= roundingSqnr - 6
        ? { kind: 'rounding', rmsSteps: Math.round(rms * 10) / 10, text: `its values have an RMS of ${rms.toFixed(1)} steps of its ${q.bits}-bit format` }
        : {
          kind: 'arithmetic', loss: worst.db - sqnr, roundingSqnr, input: worst.t,
          text: `it turns its input's ${worst.db.toFixed(1)} dB into ${sqnr.toFixed(1)} dB, where rounding its output would cost it ${roundingSqnr.toFixed(1)} dB: it amplifies its input's error`,
        };
    }
    verdicts.push({
      node: node.name, nodes: names, op: node.op, tensor: p, bits: q.bits, sqnr, ...(worst ? { inputSqnr: worst.db } : {}), threshold, cause,
      remedy: remedy(cause, node.name, q.bits, l, state),
    });
  }
  return verdicts;
}

/**
 * The seed's Relu6/Clip rule (keepClipBounds off) at a point: a Clip among the nodes computing it
 * whose own bound lies inside the format, so that the device saturates only at the format's limit
 * beyond it, while the float values seen reach that bound (the float model cuts there). E.g. a
 * Clip(0, 6) stored on a 16-bit grid up to 8 passes 6..8 where float has 6: no grid fixes that.
 */
function boundLeft(state: CalibrationState, producers: (Node | undefined)[], p: string, q: TensorQ): Extract<Cause, { kind: 'clip-bounds' }> | undefined {
  if (state.options.keepClipBounds) return undefined;
  const [lo, hi] = qRange(q.bits, q.signed).map((v) => v * 2 ** -q.scaleLog2);
  const [seenMin, seenMax] = state.rangeOf(p).seen;
  for (const n of producers) {
    const c: Clip | undefined = n && activationClip(n, state.inferred.compiled.get(n)!.params);
    if (!n || !c) continue;
    const side = c.max < hi && seenMax >= c.max ? { bound: c.max, limit: hi } : c.min > lo && seenMin <= c.min ? { bound: c.min, limit: lo } : undefined;
    if (!side) continue;
    return {
      kind: 'clip-bounds', node: n.name, ...side,
      text: `its ${n.op}(${c.min}, ${c.max}) saturates at the ${q.bits}-bit format's limit ${+side.limit.toPrecision(6)} rather than at ${side.bound}, which the float values reach ` +
        `(the seed's rule: a Relu6/Clip is a PACT2 clip, and in power-of-2 mode the device saturates only at the type's limits): fixed point passes what float cuts`,
    };
  }
  return undefined;
}

function formatClip(q: { bits: number; signed: boolean; scaleLog2: number }): string {
  const c = 2 ** ((q.signed ? q.bits - 1 : q.bits) - q.scaleLog2);
  return q.signed ? `-${c}, ${c}` : `0, ${c}`;
}

/**
 * The layer's weights as quantized: channels lost to their scale (all-zero, or fewer than 4
 * levels) and the SQNR of the weights themselves; a cause when channels are lost or the weights
 * alone are within 6 dB of the threshold.
 */
function weightCause(l: LayerState, formats: Formats, threshold: number, state: CalibrationState): Cause | undefined {
  const w = formats.scales.get(l)!;
  const perChannel = w.length > 1;
  const original = state.inferred.values.get(l.node.inputs[1])!.value!.data;
  const weightSqnr = sqnrDb(...weightError(l, w, original));
  const clip = l.analysis.clippedTo;
  if (clip !== undefined && weightSqnr < threshold + 6) {
    const hit = new Set<number>();
    let clipped = 0;
    for (let i = 0; i < original.length; i++) {
      if (Math.abs(original[i]) <= clip) continue;
      clipped++;
      hit.add(l.analysis.layout.channelOf(i));
    }
    return {
      kind: 'weight-clip', clip, clipped, channels: hit.size, weightSqnr,
      text: `the preset's weight clip at ±${clip} cuts ${clipped} weights in ${hit.size} of ${l.channels} channels (weights at ${weightSqnr.toFixed(1)} dB)`,
    };
  }
  const stats = channelStats(l.analysis, w, l.bits);
  const live: number[] = [];
  let zeroed = 0, fewLevels = 0;
  for (let c = 0; c < l.channels; c++) {
    if (!(stats.maxAbs[c] > 0)) continue;
    live.push(stats.maxAbs[c]);
    const levels = Math.round(stats.maxAbs[c] * 2 ** w[perChannel ? c : 0]);
    if (levels === 0) zeroed++;
    else if (levels < 4) fewLevels++;
  }
  if (!live.length || (!zeroed && !fewLevels && weightSqnr >= threshold + 6)) return undefined;
  const spanLog2 = ceilLog2(Math.max(...live) / Math.min(...live));
  const lost = zeroed || fewLevels
    ? `: ${zeroed} of ${l.channels} channels quantize to 0${fewLevels ? `, ${fewLevels} more keep fewer than 4 levels` : ''}`
    : '';
  return {
    kind: 'weights', channels: l.channels, zeroed, fewLevels, spanLog2, perChannel, weightSqnr,
    text: `${perChannel ? 'per-channel' : 'per-tensor'} weights whose channel ranges span 2^${spanLog2}${lost} (weights at ${weightSqnr.toFixed(1)} dB)`,
  };
}

/** Sum of w^2 and of (w - q * step)^2 over a layer's float weights, quantized at its scales. */
function weightError(l: LayerState, w: number[], values: ArrayLike<number>): [number, number] {
  const q = quantizeWeights(l.analysis, w, l.bits);
  let s = 0, e = 0;
  for (let i = 0; i < values.length; i++) {
    const step = 2 ** -w[w.length > 1 ? l.analysis.layout.channelOf(i) : 0];
    s += values[i] ** 2;
    e += (values[i] - q.data[i] * step) ** 2;
  }
  return [s, e];
}

function remedy(cause: Cause, node: string, bits: number, l: LayerState | undefined, state: CalibrationState): Remedy {
  const e = estimatorName(state.options.rules.estimator);
  const minmax: Remedy = { kind: 'estimator', option: '--estimator minmax', text: `keep the extremes: --estimator minmax (now ${e})` };
  const sixteen: Remedy = { kind: 'sixteen-bit', option: `--sixteen-bit ${node}`, text: `compute it in 16 bits: --sixteen-bit ${node}` };
  const none: Remedy = { kind: 'none', text: 'none the tool offers beyond 16 bits and the extremes' };
  if (cause.kind === 'inherited') return { kind: 'upstream', text: `fix "${cause.node}" first` };
  if (cause.kind === 'product') {
    const producers = cause.inputs.map((t) => state.producersOf(t)[0] ?? t);
    return bits === 16 ? none : { kind: 'sixteen-bit', option: `--sixteen-bit ${producers.join(',')}`, text: `compute its inputs in 16 bits: --sixteen-bit ${producers.join(',')}` };
  }
  if (cause.kind === 'arithmetic' && bits !== 16) {
    // Its input's own format is not the problem (16 bits for it leave its error as is): the error
    // it carries from the layers before it is.
    return {
      kind: 'sixteen-bit', option: '--bits 16',
      text: `it amplifies the error its input carries from the layers before "${state.producersOf(cause.input)[0] ?? cause.input}": 16 bits for that path (--sixteen-bit on its layers, or --bits 16)`,
    };
  }
  if (cause.kind === 'clip-bounds') {
    return { kind: 'clip-bounds', option: '--keep-clip-bounds', text: 'saturate at the Clip\'s own bounds as the float model does: --keep-clip-bounds (TIDL\'s power-of-2 mode does not)' };
  }
  if (cause.kind === 'weight-clip') {
    return { kind: 'preset', option: '--preset advanced-dw', text: 'a preset without weight clipping: --preset advanced-dw (or simple)' };
  }
  if (cause.kind === 'input-channels') {
    const up = state.layers.find((x) => x.node.name === cause.layer);
    return up?.depthwise && !cause.perChannel
      ? { kind: 'preset', option: '--preset advanced-dw', text: `per-channel depthwise weights for "${cause.layer}": --preset advanced-dw` }
      : { kind: 'sixteen-bit', option: `--sixteen-bit ${cause.layer}`, text: `compute "${cause.layer}" in 16 bits: --sixteen-bit ${cause.layer}` };
  }
  if (cause.kind === 'weights' && l?.depthwise && !cause.perChannel) {
    return { kind: 'preset', option: '--preset advanced-dw', text: 'per-channel depthwise weights: --preset advanced-dw' };
  }
  // A clip is a range choice, which 16 bits keep; at 16 bits the tail cut of an estimator is what
  // costs most (a 16-bit grid resolves the tail it cuts).
  if (cause.kind === 'clip' || bits === 16) return e === 'minmax' ? (bits === 16 ? none : sixteen) : minmax;
  return sixteen;
}

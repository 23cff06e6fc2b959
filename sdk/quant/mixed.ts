/**
 * Automatic mixed precision (TIDL's mixed_precision_factor): which tensors of an 8-bit
 * calibration to compute in 16 bits, within a budget of inference cost relative to all-8-bit.
 *
 * Cost model (C7x MMA). A layer with multiply-accumulates (Conv, ConvTranspose, Gemm, MatMul)
 * costs its MACs, counted from the shapes; it runs in 16-bit mode when any of its runtime inputs
 * or outputs is 16-bit (its accumulator is then int64, as the fixed-point engine computes it), and
 * a 16-bit MMA pass does a quarter of the 8-bit one's MACs per cycle: 4x the MACs. Every other op
 * that computes values (Add, Mul, pools, Concat, Sigmoid, Resize, ...) costs one unit per output
 * element, 2x in 16 bits (twice the bytes through the vector unit); ops that only move or reshape
 * data (Reshape, Transpose, Slice, nearest Resize, ...) share their input's buffer, and a Relu/Clip
 * fused into the layer before it is that layer's saturation: they cost nothing. On the shared models the MACs are more than 95 % of the all-8-bit cost, so the factor
 * is in practice the MAC-weighted share of the network raised to 16 bits: 1.5 buys 16 bits for a
 * sixth of the MACs.
 *
 * TIDL's rule: precision changes only at Conv, BatchNorm, non-max Pool and Eltwise layers. Every
 * other op computes in its inputs' precision, so the tensors it joins form one group, raised or
 * kept together; a group's boundaries are then outputs of those ops (weight layers, Add/Sub/Mul,
 * AveragePool, BatchNormalization). Groups holding a model input keep the model's bits (the data
 * layer's type is the input's).
 *
 * Choice: each group's sensitivity is the gain in output SQNR (fixed against float, dB, the
 * mean over the model outputs) when it alone is raised to 16 bits, measured on the first few
 * calibration images after the ranges are known (only for the groups that add the most noise per
 * cost in an all-8-bit run: see chooseMixedPrecision); groups are then taken greedily by gain per
 * extra cost (the cost the group adds to those already chosen) while the total stays within the
 * budget.
 * Ties go to the earlier group in graph order; the measurement sums images in image order: the
 * choice does not depend on the number of workers.
 */
import { numel, type Node } from '../graph/ir.js';
import type { Inferred } from '../passes/infer.js';
import { activationClip, changesPrecision, movesData, weightFacts } from '../ops/index.js';
import { isWeightLayer } from './pact2.js';
import type { CalibrationState } from './calibrate.js';
import { sqnrDb } from '../util/math.js';

/** Each MAC layer's 16-bit MMA pass does a quarter of the 8-bit one's MACs per cycle. */
export const MAC_COST_16 = 4;
/** Element-wise work moves twice the bytes in 16 bits. */
export const ELEMENT_COST_16 = 2;

/** Calibration images the sensitivity of each group is measured on (at most). */
export const SENSITIVITY_IMAGES = 8;

/** calibration.json "mixedPrecision": what was chosen, what it costs and what it bought. */
export interface MixedPrecisionReport {
  /** The budget: allowed cost relative to all-8-bit. */
  factor: number;
  /** The cost of the calibration as chosen (user's 16-bit names included), relative to all-8-bit. */
  cost: number;
  /** Calibration images the sensitivities and the gain were measured on (the first ones). */
  images: number;
  /** Output SQNR (dB, mean over the model outputs; before bias calibration) with every group at
   *  8 bits (the user's 16-bit names kept) and with the chosen ones raised. */
  outputSqnr: { base: number; chosen: number };
  /** How many groups had their gain measured (see chooseMixedPrecision). */
  measured: number;
  /** The groups chosen, in the order taken. */
  chosen: GroupChoice[];
  /** Every candidate group, in graph order. */
  candidates: GroupChoice[];
}

export interface GroupChoice {
  /** The stored tensors of the group (PACT2 points), in graph order. */
  tensors: string[];
  /** The nodes computing them. */
  nodes: string[];
  /** Output SQNR gain (dB) with this group alone in 16 bits, for the groups measured. */
  gain?: number;
  /** The noise-to-signal ratio its tensors and their readers add to their inputs' in the
   *  all-8-bit run (what ranks the groups for measuring). */
  noise: number;
  /** The cost it adds alone (relative to all-8-bit: 0.02 is 2 % of the all-8-bit cost). */
  cost: number;
}

/** One node's share of the cost: its MACs or its output elements, and the points it touches. */
interface NodeCost {
  macs: number;
  elements: number;
  points: string[];
}

/** The groups of points that share a precision under TIDL's rule, in graph order, without
 *  those holding a model input. */
export function precisionGroups(state: CalibrationState): string[][] {
  const { inferred, placement, graph } = state;
  const parent = new Map(placement.points.map((p) => [p, p]));
  const find = (p: string): string => {
    let r = p;
    while (parent.get(r) !== r) r = parent.get(r)!;
    parent.set(p, r);
    return r;
  };
  const order = new Map(placement.points.map((p, i) => [p, i]));
  const pointOf = (t: string) => (t && !inferred.values.get(t)?.value ? placement.formatOf.get(t) : undefined);
  for (const node of inferred.order) {
    if (isWeightLayer(node, inferred) || changesPrecision(node)) continue;
    const touched = [...node.inputs, ...node.outputs].map(pointOf).filter((p): p is string => !!p);
    for (const p of touched.slice(1)) {
      const a = find(touched[0]), b = find(p);
      // The root is the earlier point, so that groups come out in graph order.
      if (a !== b) order.get(a)! < order.get(b)! ? parent.set(b, a) : parent.set(a, b);
    }
  }
  const groups = new Map<string, string[]>();
  for (const p of placement.points) {
    const r = find(p);
    groups.set(r, [...(groups.get(r) ?? []), p]);
  }
  const inputs = new Set(graph.inputs.map((i) => placement.formatOf.get(i.name) ?? i.name));
  return [...groups.values()].filter((g) => !g.some((p) => inputs.has(p)));
}

function macs(node: Node, inferred: Inferred): number {
  const shape = (t: string) => inferred.values.get(t)!.shape;
  const out = numel(shape(node.outputs[0]));
  if (isWeightLayer(node, inferred)) {
    const w = inferred.values.get(node.inputs[1])!.value!;
    // Each input element meets all the weights of its input channel: [C, M/group, kh, kw].
    if (node.op === 'ConvTranspose') return numel(shape(node.inputs[0])) * (numel(w.dims) / w.dims[0]);
    // Each output element sums the weights of its output channel.
    return out * (numel(w.dims) / weightFacts(node)!.layout(inferred.compiled.get(node)!.params, w).channels);
  }
  return node.op === 'MatMul' ? out * shape(node.inputs[0]).at(-1)! : 0;
}

/** The cost model above, for the state's graph: cost(sixteen) for a set of 16-bit points. */
export function costModel(state: CalibrationState): (sixteen: ReadonlySet<string>) => number {
  const { inferred, placement } = state;
  const isRuntime = (t: string) => !!t && !inferred.values.get(t)?.value;
  const nodes: NodeCost[] = [];
  for (const node of inferred.order) {
    if (!node.outputs.some(isRuntime) || movesData(node)) continue;
    const points = [...new Set([...node.inputs, ...node.outputs].filter(isRuntime).map((t) => placement.formatOf.get(t) ?? t))];
    // An activation fused into the layer before it is that layer's saturation: no work of its own.
    if (activationClip(node, inferred.compiled.get(node)?.params) && points.length === 1) continue;
    const m = macs(node, inferred);
    nodes.push({ macs: m, elements: m ? 0 : numel(inferred.values.get(node.outputs[0])!.shape), points });
  }
  return (sixteen) => {
    let cost = 0;
    for (const n of nodes) {
      const wide = n.points.some((p) => sixteen.has(p));
      cost += n.macs * (wide ? MAC_COST_16 : 1) + n.elements * (wide ? ELEMENT_COST_16 : 1);
    }
    return cost;
  };
}

/**
 * Choose the groups to raise: greedily by gain per extra cost within factor x the all-8-bit cost.
 * `fixed` are the points already 16-bit (the user's), counted in the cost. `gains[i]` is group i's
 * measured gain (dB); groups that gain nothing are never taken.
 */
export function chooseGroups(
  groups: string[][], gains: number[], cost: (sixteen: ReadonlySet<string>) => number, factor: number, fixed: ReadonlySet<string>,
): number[] {
  const budget = factor * cost(new Set());
  const chosen: number[] = [];
  const current = new Set(fixed);
  let spent = cost(current);
  const left = new Set(groups.map((_, i) => i).filter((i) => gains[i] > 0 && groups[i].some((p) => !fixed.has(p))));
  for (;;) {
    let best = -1, bestRatio = -Infinity, bestCost = 0;
    for (const i of left) {
      const extra = cost(new Set([...current, ...groups[i]])) - spent;
      if (spent + extra > budget) continue;
      const ratio = extra > 0 ? gains[i] / extra : Infinity;
      if (ratio > bestRatio) [best, bestRatio, bestCost] = [i, ratio, extra];
    }
    if (best < 0) return chosen;
    chosen.push(best);
    left.delete(best);
    for (const p of groups[best]) current.add(p);
    spent += bestCost;
  }
}

/** Output SQNR (dB) from per-output sums of f^2 and (f-q)^2: the mean over the outputs. */
export function outputSqnr(sums: { signal: number; noise: number }[]): number {
  const db = sums.map(({ signal, noise }) => (signal === 0 && noise > 0 ? 0 : Math.min(200, sqnrDb(signal, noise))));
  return db.reduce((a, b) => a + b, 0) / db.length;
}

/** Groups whose sensitivity is measured: at least this many, at most MAX_MEASURED. */
const MIN_MEASURED = 4;
const MAX_MEASURED = 24;

/**
 * Per point, the noise-to-signal ratio that its own quantization or its readers' add to their
 * inputs' (the largest of theirs), from the per-point sums of an all-8-bit run: raising a tensor
 * to 16 bits removes its own rounding, and also what its readers lose from it (channels its
 * per-tensor step wipes out show only in the layer reading them).
 */
function addedNoise(state: CalibrationState, sums: Float64Array): Map<string, number> {
  const { placement, inferred } = state;
  const index = new Map(placement.points.map((p, i) => [p, i]));
  const nsr = (p: string) => {
    const i = index.get(p)!;
    return sums[2 * i] > 0 ? sums[2 * i + 1] / sums[2 * i] : 0;
  };
  const nodes = new Map(inferred.order.map((n) => [n.name, n]));
  const added = new Map(placement.points.map((p) => [p, 0]));
  for (const p of placement.points) {
    const inputs = [...new Set(state.producersOf(p).flatMap((n) => nodes.get(n)!.inputs)
      .filter((t) => t && !inferred.values.get(t)?.value).map((t) => placement.formatOf.get(t) ?? t).filter((q) => q !== p))];
    const own = Math.max(0, nsr(p) - Math.max(0, ...inputs.map(nsr)));
    for (const q of [p, ...inputs]) added.set(q, added.get(q)! + own);
  }
  return added;
}

/**
 * Choose the tensors to raise to 16 bits within `factor`. `measure(sixteen)` runs the first
 * calibration images through the fixed-point engine with those points raised (besides the
 * user's) and returns the per-point sums of f^2 and (f-q)^2 (2 per point, placement order).
 *
 * Measuring every group costs a fixed-point plan and a few images each: the groups are first
 * ranked by the noise they and their readers add in an all-8-bit run (addedNoise) per extra cost, and only the first
 * ones, enough to cover twice the budget (MIN_MEASURED to MAX_MEASURED of them), are measured.
 */
export async function chooseMixedPrecision(
  state: CalibrationState, factor: number, images: number, measure: (sixteen: ReadonlySet<string>) => Promise<Float64Array>,
): Promise<MixedPrecisionReport> {
  const points = state.placement.points;
  const outputs = [...new Set(state.graph.outputs.map((o) => state.placement.formatOf.get(o.name) ?? o.name))].map((p) => points.indexOf(p));
  const sqnr = (sums: Float64Array) => outputSqnr(outputs.map((i) => ({ signal: sums[2 * i], noise: sums[2 * i + 1] })));
  const groups = precisionGroups(state).filter((g) => g.every((p) => state.bitsOf(p) === 8));
  const cost = costModel(state);
  const fixed = new Set(points.filter((p) => state.bitsOf(p) === 16));
  const all8 = cost(new Set());
  const extra = groups.map((g) => (cost(new Set([...fixed, ...g])) - cost(fixed)) / all8);
  const baseSums = await measure(new Set());
  const base = sqnr(baseSums);
  const added = addedNoise(state, baseSums);
  const noise = groups.map((g) => g.reduce((n, p) => n + added.get(p)!, 0));
  const ranked = groups.map((_, i) => i).filter((i) => extra[i] <= factor - 1)
    .sort((a, b) => noise[b] / extra[b] - noise[a] / extra[a] || a - b);
  const measured: number[] = [];
  let covered = 0;
  for (const i of ranked) {
    if (measured.length >= MAX_MEASURED || (measured.length >= MIN_MEASURED && covered >= 2 * (factor - 1))) break;
    measured.push(i);
    covered += extra[i];
  }
  measured.sort((a, b) => a - b);
  const gains = new Map<number, number>();
  for (const i of measured) gains.set(i, sqnr(await measure(new Set(groups[i]))) - base);
  const picked = chooseGroups(measured.map((i) => groups[i]), measured.map((i) => gains.get(i)!), cost, factor, fixed).map((k) => measured[k]);
  const sixteen = new Set(picked.flatMap((i) => groups[i]));
  const chosenDb = picked.length ? sqnr(await measure(sixteen)) : base;
  const round = (x: number, d = 1e4) => Math.round(x * d) / d;
  const describe = (i: number): GroupChoice => ({
    tensors: groups[i],
    nodes: [...new Set(groups[i].flatMap((p) => state.producersOf(p)))],
    ...(gains.has(i) ? { gain: round(gains.get(i)!) } : {}),
    noise: round(noise[i], 1e8),
    cost: round(extra[i], 1e6),
  });
  return {
    factor,
    cost: round(cost(new Set([...fixed, ...sixteen])) / all8, 1e6),
    images,
    outputSqnr: { base: round(base), chosen: round(chosenDb) },
    measured: measured.length,
    chosen: picked.map(describe),
    candidates: groups.map((_, i) => describe(i)),
  };
}

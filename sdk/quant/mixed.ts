/**
 * Automatic mixed precision (TIDL's mixed_precision_factor): which tensors of an 8-bit
 * calibration to compute in 16 bits, and which layers get 16-bit weights only (TIDL's
 * params_16bit), within a budget of inference cost relative to all-8-bit.
 *
 * Cost model (C7x MMA). A layer with multiply-accumulates (Conv, ConvTranspose, Gemm, MatMul)
 * costs its MACs, counted from the shapes; it runs in 16-bit mode when any of its runtime inputs
 * or outputs is 16-bit (its accumulator is then int64, as the fixed-point engine computes it), and
 * a 16-bit MMA pass does a quarter of the 8-bit one's MACs per cycle: 4x the MACs. With 16-bit
 * weights and 8-bit activations only one operand of the MMA doubles its bytes: half the MACs per
 * pass, 2x (an assumption of this model, stated as such: the weights' side of the MMA is the one
 * widened, the feature side and the accumulator's output stay 8-bit). Every other op that computes
 * values (Add, Mul, pools, Concat, Sigmoid, Resize, ...) costs one unit per output element, 2x in
 * 16 bits (twice the bytes through the vector unit); ops that only move or reshape data (Reshape,
 * Transpose, Slice, nearest Resize, ...) share their input's buffer, and a Relu/Clip fused into the
 * layer before it is that layer's saturation: they cost nothing. On the shared models the MACs are
 * more than 95 % of the all-8-bit cost, so the factor is in practice the MAC-weighted share of the
 * network raised: 2.0 buys 16 bits for a third of the MACs, or 16-bit weights for all of them.
 *
 * TIDL's rule: precision changes only at Conv, BatchNorm, non-max Pool and Eltwise layers. Every
 * other op computes in its inputs' precision, so the tensors it joins form one group, raised or
 * kept together; a group's boundaries are then outputs of those ops (weight layers, Add/Sub/Mul,
 * AveragePool, BatchNormalization). Groups holding a model input keep the model's bits (the data
 * layer's type is the input's). Each group is a candidate (its tensors, and the weights of the
 * layers storing them, in 16 bits), and so is, for a group stored by weight layers, those layers'
 * weights alone.
 *
 * Objective: the SQNR (fixed against float, dB) of what the task reads, averaged over its parts:
 * every model output, and the values each output is made of, followed back through ops that only
 * move or concatenate them (outputSources: a detector's box, objectness and class tensors count
 * one each, not in proportion to their scale; a classifier's logits are just its output).
 *
 * Sensitivity: a group's loss is what the objective loses when it alone is back at 8 bits with
 * every other candidate in 16 bits (its weights too, then with its weights in 16 bits: the part of
 * the loss its activations cause). Measured against the quiet all-16-bit reference, each group
 * shows the noise it injects itself; raised one at a time from all-8-bit, a network whose noise
 * compounds (YOLOX) shows almost none for any. The loss is measured on the first few calibration
 * images after the ranges are known, for the groups that add the most noise per cost in an
 * all-8-bit run (see chooseMixedPrecision); candidates are then taken greedily by loss removed per
 * extra cost (the cost added to those already chosen) while the total stays within the budget.
 * Two whole-network choices are measured beside the greedy one and kept when the objective is
 * higher: the groups in graph order from the input while they fit (noise that compounds, as in
 * YOLOX, is cheapest to stop where it starts, and single-group losses do not show it), and every
 * weight layer's weights alone where they fit. Ties go to the earlier candidate in graph order
 * (and to the greedy, then the prefix choice); the measurement sums images in image order: the
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
/** With 16-bit weights and 8-bit activations, half of them. */
export const WEIGHT_COST_16 = 2;
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
  /** Calibration images the sensitivities and the objective were measured on (the first ones). */
  images: number;
  /** The objective (dB, mean SQNR over the model outputs and their sources; before bias
   *  calibration) with every candidate at 8 bits (the user's 16-bit names kept), with the chosen
   *  ones raised, and with every candidate raised (the reference the losses are measured from). */
  outputSqnr: { base: number; chosen: number; all16: number };
  /** The tensors the objective averages over: the model outputs and their sources. */
  objective: string[];
  /** How many groups had their loss measured (see chooseMixedPrecision). */
  measured: number;
  /** How the choice was made, the one of the three measured best: 'greedy' (by measured loss per
   *  cost), 'prefix' (the groups in graph order from the input while they fit) or 'weights'
   *  (every weight layer's weights alone). */
  strategy: Strategy;
  /** The candidates chosen, in the order taken. */
  chosen: GroupChoice[];
  /** Every candidate group, in graph order (the weights-only candidates of measured groups after
   *  their group). */
  candidates: GroupChoice[];
}

export interface GroupChoice {
  /** The stored tensors raised (PACT2 points), in graph order; none for a weights-only candidate. */
  tensors: string[];
  /** The nodes computing them, or the weight layers given 16-bit weights. */
  nodes: string[];
  /** Weights-only: the layers (node names) whose weights are 16-bit, activations kept. */
  weights?: string[];
  /** Objective loss (dB) with this group back at 8 bits and every other candidate 16-bit, for
   *  the groups measured (weights-only: the part of the loss due to the weights). */
  gain?: number;
  /** The noise-to-signal ratio its tensors and their readers add to their inputs' in the
   *  all-8-bit run (what ranks the groups for measuring). */
  noise: number;
  /** The cost it adds alone (relative to all-8-bit: 0.02 is 2 % of the all-8-bit cost). */
  cost: number;
}

/** What a candidate raises: stored points (and the weights of the layers storing them), and the
 *  weights of layers whose activations keep the model's bits (node names). */
export interface Raised {
  tensors: ReadonlySet<string>;
  weights: ReadonlySet<string>;
}

export type Strategy = 'greedy' | 'prefix' | 'weights';

/** cost(raised): the inference cost of a calibration with those tensors and weights in 16 bits. */
export type CostModel = (raised: Raised) => number;

/** One node's share of the cost: its MACs or its output elements, the points it touches, and
 *  for a weight layer its name. */
interface NodeCost {
  macs: number;
  elements: number;
  points: string[];
  layer?: string;
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

/** The cost model above, for the state's graph. */
export function costModel(state: CalibrationState): CostModel {
  const { inferred, placement } = state;
  const isRuntime = (t: string) => !!t && !inferred.values.get(t)?.value;
  const nodes: NodeCost[] = [];
  for (const node of inferred.order) {
    if (!node.outputs.some(isRuntime) || movesData(node)) continue;
    const points = [...new Set([...node.inputs, ...node.outputs].filter(isRuntime).map((t) => placement.formatOf.get(t) ?? t))];
    // An activation fused into the layer before it is that layer's saturation: no work of its own.
    if (activationClip(node, inferred.compiled.get(node)?.params) && points.length === 1) continue;
    const m = macs(node, inferred);
    nodes.push({
      macs: m, elements: m ? 0 : numel(inferred.values.get(node.outputs[0])!.shape), points,
      ...(isWeightLayer(node, inferred) ? { layer: node.name } : {}),
    });
  }
  return ({ tensors, weights }) => {
    let cost = 0;
    for (const n of nodes) {
      const wide = n.points.some((p) => tensors.has(p));
      const macCost = wide ? MAC_COST_16 : n.layer && weights.has(n.layer) ? WEIGHT_COST_16 : 1;
      cost += n.macs * macCost + n.elements * (wide ? ELEMENT_COST_16 : 1);
    }
    return cost;
  };
}

/** A candidate's tensors and weights added to `raised`. */
function plus(raised: Raised, c: Raised): Raised {
  return { tensors: new Set([...raised.tensors, ...c.tensors]), weights: new Set([...raised.weights, ...c.weights]) };
}

/**
 * Choose the candidates to raise: greedily by gain per extra cost within factor x the all-8-bit
 * cost. `fixed` is what is already 16-bit (the user's names), counted in the cost. A candidate's
 * gain is the sum of its parts' (`parts[i]`, indices into `worth`, in dB) not taken yet with an
 * earlier pick (a group after its weights alone gains what its activations add); candidates that
 * would gain nothing are never taken.
 */
export function chooseGroups(
  candidates: Raised[], parts: number[][], worth: number[], cost: CostModel, factor: number, fixed: Raised,
): number[] {
  const budget = factor * cost({ tensors: new Set(), weights: new Set() });
  const chosen: number[] = [];
  const taken = new Set<number>();
  let current = fixed;
  let spent = cost(current);
  const gainOf = (i: number) => parts[i].reduce((g, k) => g + (taken.has(k) ? 0 : worth[k]), 0);
  const adds = (i: number) => [...candidates[i].tensors].some((p) => !current.tensors.has(p)) || [...candidates[i].weights].some((n) => !current.weights.has(n));
  const left = new Set(candidates.map((_, i) => i));
  for (;;) {
    let best = -1, bestRatio = -Infinity, bestCost = 0;
    for (const i of left) {
      const gain = gainOf(i);
      if (!(gain > 0) || !adds(i)) continue;
      const extra = cost(plus(current, candidates[i])) - spent;
      if (spent + extra > budget) continue;
      const ratio = extra > 0 ? gain / extra : Infinity;
      if (ratio > bestRatio) [best, bestRatio, bestCost] = [i, ratio, extra];
    }
    if (best < 0) return chosen;
    chosen.push(best);
    left.delete(best);
    for (const k of parts[best]) taken.add(k);
    current = plus(current, candidates[best]);
    spent += bestCost;
  }
}

/** SQNR (dB) from per-tensor sums of f^2 and (f-q)^2: the mean over the tensors. */
export function outputSqnr(sums: { signal: number; noise: number }[]): number {
  const db = sums.map(({ signal, noise }) => (signal === 0 && noise > 0 ? 0 : Math.min(200, sqnrDb(signal, noise))));
  return db.reduce((a, b) => a + b, 0) / db.length;
}

/**
 * The points the objective averages over: each model output, and the points its values come
 * from through ops that only move or concatenate them (a Concat's inputs, a Reshape's or
 * Transpose's source), in graph order. A classifier's logits are its output alone; a detector's
 * box, objectness and class tensors are one term each, whatever their scales.
 */
export function outputSources(state: CalibrationState): string[] {
  const { inferred, placement, graph } = state;
  const producer = new Map<string, Node>();
  for (const n of inferred.order) for (const o of n.outputs) producer.set(o, n);
  const isRuntime = (t: string) => !!t && !inferred.values.get(t)?.value;
  const found = new Set<string>();
  const seen = new Set<string>();
  const visit = (t: string) => {
    if (seen.has(t)) return;
    seen.add(t);
    const n = producer.get(t);
    if (n && (movesData(n) || n.op === 'Concat')) n.inputs.filter(isRuntime).forEach(visit);
    else found.add(placement.formatOf.get(t) ?? t);
  };
  for (const o of graph.outputs) {
    if (!isRuntime(o.name)) continue;
    found.add(placement.formatOf.get(o.name) ?? o.name);
    visit(o.name);
  }
  const order = new Map(placement.points.map((p, i) => [p, i]));
  return [...found].filter((p) => order.has(p)).sort((a, b) => order.get(a)! - order.get(b)!);
}

/** Groups whose loss is measured: at least this many, at most MAX_MEASURED, MEASURE_STEP more at
 *  a time while the choice leaves room. */
const MIN_MEASURED = 4;
const MAX_MEASURED = 40;
const MEASURE_STEP = 8;
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
 * Choose what to raise to 16 bits within `factor`. `measure(raised)` runs the first calibration
 * images through the fixed-point engine with those tensors and weights raised (besides the
 * user's) and returns the per-point sums of f^2 and (f-q)^2 (2 per point, placement order).
 *
 * Measuring every group costs a fixed-point plan and a few images each (two for a group stored by
 * weight layers: all of it at 8 bits, then its activations only): the groups are first ranked by
 * the noise they and their readers add in an all-8-bit run (addedNoise) per extra cost of their
 * cheapest candidate, and only the first ones, enough to cover twice the budget (MIN_MEASURED to
 * MAX_MEASURED of them), are measured.
 */
export async function chooseMixedPrecision(
  state: CalibrationState, factor: number, images: number, measure: (raised: Raised) => Promise<Float64Array>,
): Promise<MixedPrecisionReport> {
  const points = state.placement.points;
  const index = new Map(points.map((p, i) => [p, i]));
  const objective = outputSources(state);
  const sqnr = (sums: Float64Array) => outputSqnr(objective.map((p) => ({ signal: sums[2 * index.get(p)!], noise: sums[2 * index.get(p)! + 1] })));
  const groups = precisionGroups(state).filter((g) => g.every((p) => state.bitsOf(p) === 8));
  // The weight layers storing each group's points, where their weights are at the model's bits.
  const layersOf = groups.map((g) => state.layers.filter((l) => l.bits === 8 && g.includes(l.stored)).map((l) => l.node.name));
  const cost = costModel(state);
  const none: Raised = { tensors: new Set(), weights: new Set() };
  const fixed: Raised = {
    tensors: new Set(points.filter((p) => state.bitsOf(p) === 16)),
    weights: new Set(state.layers.filter((l) => l.bits === 16).map((l) => l.node.name)),
  };
  const all8 = cost(none);
  const full = groups.map((g): Raised => ({ tensors: new Set(g), weights: new Set() }));
  const weightsOnly = layersOf.map((ls): Raised => ({ tensors: new Set(), weights: new Set(ls) }));
  const extraOf = (c: Raised) => (cost(plus(fixed, c)) - cost(fixed)) / all8;
  const extra = full.map(extraOf);
  const extraW = weightsOnly.map((c, i) => (layersOf[i].length ? extraOf(c) : Infinity));
  const cheapest = groups.map((_, i) => Math.min(extra[i], extraW[i]));
  const baseSums = await measure(none);
  const base = sqnr(baseSums);
  const added = addedNoise(state, baseSums);
  const noise = groups.map((g) => g.reduce((n, p) => n + added.get(p)!, 0));
  const ranked = groups.map((_, i) => i).filter((i) => cheapest[i] <= factor - 1)
    .sort((a, b) => noise[b] / cheapest[b] - noise[a] / cheapest[a] || a - b);
  // The reference: every candidate raised; each measured group's loss from it.
  const everything: Raised = { tensors: new Set(groups.flat()), weights: new Set() };
  const all16 = ranked.length ? sqnr(await measure(everything)) : base;
  const without = (i: number, weights: Iterable<string>): Raised => ({
    tensors: new Set([...everything.tensors].filter((p) => !full[i].tensors.has(p))), weights: new Set(weights),
  });
  // Parts per measured group: its activations and its weights (dB of objective lost at 8 bits).
  const lossAct = new Map<number, number>(), lossW = new Map<number, number>();
  const measureGroup = async (i: number) => {
    const whole = all16 - sqnr(await measure(without(i, [])));
    const act = layersOf[i].length ? all16 - sqnr(await measure(without(i, layersOf[i]))) : whole;
    lossAct.set(i, Math.max(0, act));
    lossW.set(i, Math.max(0, whole - Math.max(0, act)));
  };
  // Candidates of the measured groups, in graph order: each group whole, and its weights alone.
  let candidates: Raised[] = [], owner: { group: number; weightsOnly: boolean }[] = [];
  const choose = () => {
    const measured = [...lossAct.keys()].sort((x, y) => x - y);
    candidates = [];
    owner = [];
    const parts: number[][] = [], worth: number[] = [];
    measured.forEach((i, k) => {
      worth.push(lossAct.get(i)!, lossW.get(i)!);
      candidates.push(full[i]);
      parts.push([2 * k, 2 * k + 1]);
      owner.push({ group: i, weightsOnly: false });
      if (layersOf[i].length) {
        candidates.push(weightsOnly[i]);
        parts.push([2 * k + 1]);
        owner.push({ group: i, weightsOnly: true });
      }
    });
    return chooseGroups(candidates, parts, worth, cost, factor, fixed);
  };
  // The first groups in rank, enough to cover twice the budget; then, while the choice leaves room
  // that a group not measured yet would fit in, the next MEASURE_STEP of them.
  let covered = 0;
  for (const i of ranked) {
    if (lossAct.size >= MAX_MEASURED || (lossAct.size >= MIN_MEASURED && covered >= 2 * (factor - 1))) break;
    covered += cheapest[i];
    await measureGroup(i);
  }
  let picked = choose();
  for (;;) {
    const room = factor - cost(picked.reduce((r, k) => plus(r, candidates[k]), fixed)) / all8;
    const fits = ranked.filter((i) => !lossAct.has(i) && cheapest[i] <= room);
    if (!fits.length || lossAct.size >= MAX_MEASURED) break;
    for (const i of fits.slice(0, Math.min(MEASURE_STEP, MAX_MEASURED - lossAct.size))) await measureGroup(i);
    picked = choose();
  }
  // The whole-network alternatives: a prefix of the groups in graph order, and weights alone.
  const budget = factor * all8;
  const fill = (order: Raised[]) => {
    const taken: number[] = [];
    let raised = fixed;
    for (let i = 0; i < order.length; i++) {
      if (!order[i].tensors.size && !order[i].weights.size) continue;
      const next = plus(raised, order[i]);
      if (cost(next) > budget) break;
      raised = next;
      taken.push(i);
    }
    return taken;
  };
  const alternatives: { strategy: Strategy; picks: { group: number; weightsOnly: boolean }[] }[] = [
    { strategy: 'greedy', picks: picked.map((k) => owner[k]) },
    { strategy: 'prefix', picks: fill(full).map((group) => ({ group, weightsOnly: false })) },
    { strategy: 'weights', picks: fill(weightsOnly).map((group) => ({ group, weightsOnly: true })) },
  ];
  const raisedBy = (picks: { group: number; weightsOnly: boolean }[]) =>
    picks.reduce((r, o) => plus(r, o.weightsOnly ? weightsOnly[o.group] : full[o.group]), none);
  let best = { ...alternatives[0], db: picked.length ? sqnr(await measure(raisedBy(alternatives[0].picks))) : base };
  for (const alt of alternatives.slice(1)) {
    if (!alt.picks.length) continue;
    const db = sqnr(await measure(raisedBy(alt.picks)));
    if (db > best.db) best = { ...alt, db };
  }
  const chosen = raisedBy(best.picks);
  const chosenDb = best.db;
  const round = (x: number, d = 1e4) => Math.round(x * d) / d;
  const describe = (i: number, w = false): GroupChoice => {
    const gain = w ? lossW.get(i) : lossAct.has(i) ? lossAct.get(i)! + lossW.get(i)! : undefined;
    return {
      tensors: w ? [] : groups[i],
      nodes: w ? layersOf[i] : [...new Set(groups[i].flatMap((p) => state.producersOf(p)))],
      ...(w ? { weights: layersOf[i] } : {}),
      ...(gain !== undefined ? { gain: round(gain) } : {}),
      noise: round(noise[i], 1e8),
      cost: round(w ? extraW[i] : extra[i], 1e6),
    };
  };
  // Only the weights (or only the activations) of a group taken in two picks: report it once, whole.
  const picks = best.picks;
  const reported = picks.filter((o, j) => !(o.weightsOnly && picks.some((q, m) => m > j && q.group === o.group)));
  return {
    factor,
    cost: round(cost(plus(fixed, chosen)) / all8, 1e6),
    images,
    outputSqnr: { base: round(base), chosen: round(chosenDb), all16: round(all16) },
    objective,
    measured: lossAct.size,
    strategy: best.strategy,
    chosen: reported.map((o) => describe(o.group, o.weightsOnly)),
    candidates: groups.flatMap((_, i) => (lossW.has(i) && layersOf[i].length ? [describe(i), describe(i, true)] : [describe(i)])),
  };
}

/**
 * Where PACT2 quantization points go (DESIGN.md §4), and which point decides the format of every
 * runtime tensor. Points: the model inputs and outputs; every Relu/Clip (activations); the
 * output of every other op that computes new values (Conv/Gemm/MatMul, Add, Mul, Concat,
 * pools, standalone BN and the float-fallback ops). Where a node's only consumer is an
 * activation, the point goes after the activation (the device fuses it). Ops that only move data
 * (Reshape, Transpose, Slice, nearest Resize, ...) pass their input's format through.
 */
import type { Inferred } from '../passes/infer.js';
import { consumers, type Graph, type Node } from '../graph/ir.js';
import { opModule } from '../ops/index.js';

/** Ops whose output holds exactly values of their input (same format on the device). */
const PASS_THROUGH = new Set([
  'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Dropout', 'Transpose', 'Slice', 'Split',
  'Gather', 'Expand', 'Pad',
]);

export const ACTIVATIONS = new Set(['Relu', 'Clip']);

/** Ops with constant weights that the device runs as one MMA layer. */
export function isWeightLayer(node: Node, inf: Inferred): boolean {
  if (node.op === 'Conv' || node.op === 'ConvTranspose') return !!inf.values.get(node.inputs[1])?.value;
  if (node.op === 'Gemm' || node.op === 'MatMul') {
    const transA = node.op === 'Gemm' && node.attrs.transA?.value;
    const w = inf.values.get(node.inputs[1])?.value;
    // A batched constant B ([.., K, N]) is not one MMA layer: such a MatMul runs as float fallback.
    return !transA && !!w && w.dims.length === 2 && !inf.values.get(node.inputs[0])?.value;
  }
  return false;
}

/** An output computed value by value from its input (or along one axis, as Softmax). */
function pointwise(node: Node): boolean {
  const mod = opModule(node);
  return !!mod && (!!mod.elementwise || !!mod.outputRange);
}

export function passesThrough(node: Node): boolean {
  if (node.op === 'Resize' || node.op === 'Upsample') return (node.attrs.mode?.value ?? 'nearest') === 'nearest';
  if (node.op === 'Pad') return (node.attrs.mode?.value ?? 'constant') === 'constant';
  return PASS_THROUGH.has(node.op);
}

export interface Placement {
  /** Tensors whose ranges are observed, in graph order. */
  points: string[];
  /** For every runtime tensor: the point whose format it takes. */
  formatOf: Map<string, string>;
  /** Points that follow an activation whose lower bound is 0 (always unsigned). */
  unsigned: Set<string>;
}

export function placePact2(graph: Graph, inf: Inferred): Placement {
  const readers = consumers(graph);
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const isRuntime = (t: string) => !!t && !inf.values.get(t)?.value;
  const points: string[] = [];
  const formatOf = new Map<string, string>();
  const unsigned = new Set<string>();
  const point = (t: string) => {
    if (!points.includes(t)) points.push(t);
    formatOf.set(t, t);
  };

  for (const v of graph.inputs) point(v.name);
  for (const node of inf.order) {
    const out = node.outputs[0];
    if (!isRuntime(out)) continue;
    if (passesThrough(node) && isRuntime(node.inputs[0])) {
      const src = formatOf.get(node.inputs[0]) ?? node.inputs[0];
      for (const o of node.outputs) if (o) formatOf.set(o, src);
      if (outputs.has(out)) point(out);
      continue;
    }
    if (ACTIVATIONS.has(node.op)) {
      point(out);
      const lo = node.op === 'Relu' ? 0 : clipMin(node, inf, graph.opset);
      if (lo >= 0) unsigned.add(out);
      continue;
    }
    const next = readers.get(out) ?? [];
    const act = next.length === 1 && ACTIVATIONS.has(next[0].op) && !outputs.has(out) ? next[0] : undefined;
    if (act) {
      // Fused on the device: this tensor never exists apart from the activation's output.
      formatOf.set(out, act.outputs[0]);
    } else {
      for (const o of node.outputs) if (isRuntime(o)) point(o);
    }
  }
  for (const o of graph.outputs) if (isRuntime(o.name) && !formatOf.has(o.name)) point(o.name);
  return { points, formatOf, unsigned };
}

export function clipMin(node: Node, inf: Inferred, opset: number): number {
  if (opset < 11) {
    const a = node.attrs.min;
    return a && (a.type === 'float' || a.type === 'int') ? a.value : -Infinity;
  }
  const v = node.inputs[1] ? inf.values.get(node.inputs[1])?.value : undefined;
  return v ? v.data[0] : -Infinity;
}

/**
 * The points whose values the task reads at their peaks: every model output, followed back
 * through ops that only move or concatenate values (a detection head's Concat of scores, its
 * Reshapes), and the tensors that feed an element-wise op or Softmax computing them (the logits
 * of a Sigmoid score). The inputs of a Conv or Gemm computing an output are not read that way.
 */
export function outputFeeds(graph: Graph, inf: Inferred, placement: Placement): Set<string> {
  const producer = new Map<string, Node>();
  for (const n of inf.order) for (const o of n.outputs) producer.set(o, n);
  const isRuntime = (t: string) => !!t && !inf.values.get(t)?.value;
  const found = new Set<string>();
  const mark = (t: string) => {
    const p = placement.formatOf.get(t);
    if (p) found.add(p);
  };
  const seen = new Set<string>();
  const visit = (t: string) => {
    if (seen.has(t)) return;
    seen.add(t);
    mark(t);
    const n = producer.get(t);
    if (!n) return;
    const inputs = n.inputs.filter(isRuntime);
    if (passesThrough(n) || n.op === 'Concat') inputs.forEach(visit);
    else if (pointwise(n)) inputs.forEach(mark);
  };
  for (const o of graph.outputs) if (isRuntime(o.name)) visit(o.name);
  return found;
}

/**
 * Where PACT2 quantization points go (DESIGN.md §4), and which point decides the format of every
 * runtime tensor. Points: the model inputs and outputs; every Relu/Clip (activations); the
 * output of every other op that computes new values (Conv/Gemm/MatMul, Add, Mul, Concat,
 * pools, standalone BN and the float-fallback ops). Where a node's only consumer is an
 * activation, the point goes after the activation (the device fuses it: fusedActivation). Ops
 * that only move data (their modules' `movesData`: Reshape, Transpose, Slice, nearest Resize, ...)
 * pass their input's format through.
 */
import type { Inferred } from '../passes/infer.js';
import { consumers, type Graph, type Node } from '../graph/ir.js';
import { activationClip, fusedActivation, isWeightLayer as weightLayer, movesData, opModule } from '../ops/index.js';

/** Ops with constant weights that the device runs as one MMA layer (their modules decide). */
export function isWeightLayer(node: Node, inf: Inferred): boolean {
  return weightLayer(node, inf.compiled.get(node)?.params, node.inputs.map((i) => (i ? inf.values.get(i) : undefined)));
}

/** An output computed value by value from its input (or along one axis, as Softmax). */
function pointwise(node: Node): boolean {
  const mod = opModule(node);
  return !!mod && (!!mod.elementwise || !!mod.outputRange);
}

export interface Placement {
  /** Tensors whose ranges are observed, in graph order. */
  points: string[];
  /** For every runtime tensor: the point whose format it takes. */
  formatOf: Map<string, string>;
  /** Points that follow an activation whose lower bound is 0 (always unsigned). */
  unsigned: Set<string>;
  /** Points that are the output of an activation (Relu, Clip). */
  activations: Set<string>;
}

export function placePact2(graph: Graph, inf: Inferred): Placement {
  const readers = consumers(graph);
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const isRuntime = (t: string) => !!t && !inf.values.get(t)?.value;
  const points: string[] = [];
  const formatOf = new Map<string, string>();
  const unsigned = new Set<string>();
  const activations = new Set<string>();
  const paramsOf = (n: Node) => inf.compiled.get(n)?.params;
  const point = (t: string) => {
    if (!points.includes(t)) points.push(t);
    formatOf.set(t, t);
  };

  for (const v of graph.inputs) point(v.name);
  for (const node of inf.order) {
    const out = node.outputs[0];
    if (!isRuntime(out)) continue;
    if (movesData(node) && isRuntime(node.inputs[0])) {
      const src = formatOf.get(node.inputs[0]) ?? node.inputs[0];
      for (const o of node.outputs) if (o) formatOf.set(o, src);
      if (outputs.has(out)) point(out);
      continue;
    }
    const clip = activationClip(node, paramsOf(node));
    if (clip) {
      point(out);
      activations.add(out);
      if (clip.min >= 0) unsigned.add(out);
      continue;
    }
    const act = fusedActivation(node, readers, outputs, paramsOf);
    if (act) {
      // Fused on the device: this tensor never exists apart from the activation's output.
      formatOf.set(out, act.node.outputs[0]);
    } else {
      for (const o of node.outputs) if (isRuntime(o)) point(o);
    }
  }
  for (const o of graph.outputs) if (isRuntime(o.name) && !formatOf.has(o.name)) point(o.name);
  return { points, formatOf, unsigned, activations };
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
    if (movesData(n) || n.op === 'Concat') inputs.forEach(visit);
    else if (pointwise(n)) inputs.forEach(mark);
  };
  for (const o of graph.outputs) if (isRuntime(o.name)) visit(o.name);
  return found;
}

/** Small graph-editing helpers shared by the exporters. */
import { topoSort, type Inferred } from '../passes/infer.js';
import { isFloat, tensor, type Graph, type Node } from '../graph/ir.js';
import { clipBounds, removeDead } from '../passes/transforms.js';
import { clipOf, type TensorQ } from '../device/spec.js';

/** A name no initializer, node output or input of `g` has, nor any of `reserved` (names handed
 *  out for nodes not yet in the graph). */
export function freshName(g: Graph, base: string, reserved?: Set<string>): string {
  const taken = (n: string) => g.initializers.has(n) || g.nodes.some((x) => x.outputs.includes(n)) || g.inputs.some((i) => i.name === n) || !!reserved?.has(n);
  let name = base;
  for (let i = 1; taken(name); i++) name = `${base}_${i}`;
  return name;
}

/** Give the nodes an exporter adds names that no node of `g` (and no other added node) has: the
 *  model's own node names stay as they are (traces refer to them). */
export function uniqueNodeNames(g: Graph, added: Node[]): void {
  const names = new Set(g.nodes.map((n) => n.name));
  for (const n of added) {
    const base = n.name;
    for (let i = 1; names.has(n.name); i++) n.name = `${base}_${i}`;
    names.add(n.name);
  }
}

/** Whether a point holds float values: integer and boolean tensors (a peer int8 model's
 *  QuantizeLinear outputs, comparisons) take no clip and no Q/DQ pair in the exports. */
export function holdsFloats(inf: Inferred, tensorName: string): boolean {
  return isFloat(inf.values.get(tensorName)!.dtype);
}

/** Static shapes on the graph interface (the prepared graph was folded at these shapes). */
export function staticIO(g: Graph, inf: Inferred): void {
  for (const v of [...g.inputs, ...g.outputs]) v.dims = [...inf.values.get(v.name)!.shape];
}

/**
 * The bounds an activation point's Clip gets in the exports: the device saturates at the tensor
 * format's range (the PACT2 clip) and, where the spec keeps clip bounds, also at a Clip's own, so
 * the two intersect.
 */
export function pact2Bounds(g: Graph, activation: Node, q: TensorQ, keepClipBounds: boolean): [number, number] {
  const [lo, hi] = clipOf(q);
  const own = activation.op === 'Clip' && keepClipBounds ? clipBounds(g, activation) ?? [-Infinity, Infinity] : [0, Infinity];
  return [Math.max(lo, own[0]), Math.min(hi, own[1])];
}

/** Set a Clip node's bounds in the form its opset uses. */
export function setClipBounds(g: Graph, clip: Node, [lo, hi]: [number, number]): void {
  if (g.opset < 11) {
    clip.attrs = { min: { type: 'float', value: lo }, max: { type: 'float', value: hi } };
    return;
  }
  const min = freshName(g, `${clip.name}_pact2_min`);
  const max = freshName(g, `${clip.name}_pact2_max`);
  g.initializers.set(min, tensor('float32', [], [lo]));
  g.initializers.set(max, tensor('float32', [], [hi]));
  clip.inputs = [clip.inputs[0], min, max];
}

/** After edits: nodes back in topological order, initializers nothing reads dropped. */
export function finishEdits(g: Graph): void {
  g.nodes = topoSort(g);
  removeDead(g);
}

/**
 * Static analysis of a graph once its input shapes are known: validation (unsupported ops,
 * dangling tensors, cycles), topological order, shape inference for every value, and the values
 * of everything computable from constants alone (what constant folding then bakes in).
 */
import { fail } from '../errors.js';
import { opKey, opModule } from '../ops/index.js';
import type { Compiled, ValueMeta } from '../ops/op.js';
import { allocData, numel, type Graph, type Node } from '../graph/ir.js';
import { checkDims } from '../onnx/tensor.js';

/** Bound on the constants folded at load (shape chains, dequantized or transposed weights). */
export const MAX_CONSTANT_BYTES = 2 * 2 ** 30;

export type InputShapes = number[] | Record<string, number[]>;

export interface Inferred {
  /** Nodes in topological order. */
  order: Node[];
  values: Map<string, ValueMeta>;
  compiled: Map<Node, Compiled<unknown>>;
}

export function unsupportedNodes(graph: Graph): { op: string; node: string }[] {
  return graph.nodes.filter((n) => !opModule(n)).map((n) => ({ op: opKey(n), node: n.name }));
}

export function checkSupported(graph: Graph): void {
  const bad = unsupportedNodes(graph);
  if (bad.length) {
    fail('UNSUPPORTED', `unsupported ops: ${bad.map((b) => `${b.op} (node "${b.node}")`).join(', ')}`);
  }
}

/** Kahn's order; names the nodes on a cycle and tensors nobody produces. */
export function topoSort(graph: Graph): Node[] {
  const available = new Set<string>([...graph.inputs.map((v) => v.name), ...graph.initializers.keys()]);
  const producer = new Map<string, Node>();
  for (const n of graph.nodes) {
    if (!n.outputs.some(Boolean)) fail('BAD_MODEL', `node "${n.name}" (${n.op}) has no outputs`);
    for (const o of n.outputs) {
      if (!o) continue;
      if (producer.has(o) || available.has(o)) fail('BAD_MODEL', `tensor "${o}" is produced more than once (node "${n.name}")`);
      producer.set(o, n);
    }
  }
  const pending = new Map<Node, number>();
  const readers = new Map<string, Node[]>();
  for (const n of graph.nodes) {
    let waits = 0;
    for (const i of new Set(n.inputs)) {
      if (!i || available.has(i)) continue;
      if (!producer.has(i)) fail('BAD_MODEL', `node "${n.name}" (${n.op}) reads tensor "${i}", which no node, input or initializer produces`);
      waits++;
      let r = readers.get(i);
      if (!r) readers.set(i, (r = []));
      r.push(n);
    }
    pending.set(n, waits);
  }
  const ready = graph.nodes.filter((n) => pending.get(n) === 0);
  const order: Node[] = [];
  for (let next = 0; next < ready.length; next++) {
    const n = ready[next];
    order.push(n);
    for (const o of n.outputs) {
      for (const r of readers.get(o) ?? []) {
        const w = pending.get(r)! - 1;
        pending.set(r, w);
        if (w === 0) ready.push(r);
      }
    }
  }
  if (order.length !== graph.nodes.length) {
    const stuck = graph.nodes.filter((n) => pending.get(n)! > 0).map((n) => `"${n.name}"`);
    fail('BAD_MODEL', `the graph has a cycle through nodes ${stuck.slice(0, 5).join(', ')}${stuck.length > 5 ? ', ...' : ''}`);
  }
  for (const out of graph.outputs) {
    if (!available.has(out.name) && !producer.has(out.name)) fail('BAD_MODEL', `graph output "${out.name}" is produced by no node`);
  }
  return order;
}

/** Concrete input shapes: declared dims, with dynamic ones taken from the user's shapes. */
export function resolveInputShapes(graph: Graph, given?: InputShapes): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const byName: Record<string, number[]> =
    given === undefined || given === null ? {} : Array.isArray(given) ? (graph.inputs[0] ? { [graph.inputs[0].name]: given } : {}) : given;
  const isShape = (s: unknown) => Array.isArray(s) && s.every((d) => Number.isSafeInteger(d));
  if (typeof byName !== 'object' || !Object.values(byName).every(isShape)) {
    fail('SHAPE', 'inputShape must be a list of integers (one input) or a record of them by input name');
  }
  for (const name of Object.keys(byName)) {
    if (!graph.inputs.some((v) => v.name === name)) {
      fail('SHAPE', `an input shape was given for "${name}", but the model's inputs are ${graph.inputs.map((v) => `"${v.name}"`).join(', ')}`);
    }
  }
  for (const v of graph.inputs) {
    const user = byName[v.name];
    const declared = `[${v.dims.join(',')}]`;
    if (user) {
      if (user.length !== v.dims.length || user.some((d, i) => typeof v.dims[i] === 'number' && v.dims[i] !== d && v.dims[i] !== 0)) {
        fail('SHAPE', `input "${v.name}" is declared ${declared}; the given shape [${user.join(',')}] does not fit it`);
      }
      checkDims(user, `input "${v.name}"`);
      if (user.some((d) => d <= 0)) fail('SHAPE', `input "${v.name}": dimensions must be positive, got [${user.join(',')}]`);
      out.set(v.name, [...user]);
    } else {
      if (v.dims.some((d) => typeof d !== 'number')) {
        fail('SHAPE', `input "${v.name}" has dynamic dims ${declared}; give the input shape (e.g. ${v.dims.map((d) => (typeof d === 'number' ? d : 1)).join(',')})`);
      }
      out.set(v.name, v.dims as number[]);
    }
  }
  return out;
}

export function inferGraph(graph: Graph, inputShapes: Map<string, number[]>): Inferred {
  checkSupported(graph);
  const order = topoSort(graph);
  const values = new Map<string, ValueMeta>();
  for (const v of graph.inputs) values.set(v.name, { dtype: v.dtype, shape: inputShapes.get(v.name)! });
  for (const [name, t] of graph.initializers) values.set(name, { dtype: t.dtype, shape: t.dims, value: t });
  const compiled = new Map<Node, Compiled<unknown>>();
  let constantBytes = 0;
  for (const node of order) {
    const mod = opModule(node)!;
    const inputs = node.inputs.map((i) => (i ? values.get(i)! : undefined));
    const c = mod.compile({ node, opset: graph.opset, inputs });
    if (node.outputs.some((o, k) => o && k >= c.outputs.length)) {
      fail('UNSUPPORTED', `node "${node.name}" (${node.op}) has ${node.outputs.length} outputs; p2calib computes ${c.outputs.length} for ${node.op}`);
    }
    compiled.set(node, c);
    c.outputs.forEach((o, k) => checkDims(o.shape, `node "${node.name}" (${node.op}) output ${k}`));
    const foldable = !mod.noFold && c.outputs.every((o) => !o.value) && inputs.every((v) => !v || v.value);
    // Constants computed at load live in JS memory: their total is bounded like the arena.
    constantBytes += c.outputs.reduce((a, o) => a + (o.value ? o.value.data.byteLength : foldable ? numel(o.shape) * 8 : 0), 0);
    if (constantBytes > MAX_CONSTANT_BYTES) {
      fail('TOO_LARGE', `node "${node.name}" (${node.op}): the constants computed at load would exceed ${MAX_CONSTANT_BYTES / 2 ** 30} GiB`);
    }
    if (foldable) {
      const outs = c.outputs.map((o) => allocData(o.dtype, numel(o.shape)));
      mod.reference(c.params, inputs.map((v) => (v ? v.value!.data : new Float32Array(0))), outs);
      c.outputs.forEach((o, k) => { o.value = { dtype: o.dtype, dims: o.shape, data: outs[k] }; });
    }
    node.outputs.forEach((name, k) => {
      if (name && c.outputs[k]) values.set(name, c.outputs[k]);
    });
  }
  return { order, values, compiled };
}

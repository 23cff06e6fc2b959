/**
 * Static memory plan: every runtime tensor gets a fixed offset in one arena, reused by tensors
 * whose lifetimes do not overlap. Greedy by size (largest first, lowest fitting offset), which is
 * what TFLite's arena planner does and lands close to the peak of live bytes on CNNs.
 *
 * Both executors (float.ts, fixed.ts) are built by the same steps, named in their constructors:
 * plan one step per node that runs (keptTensors, stepInputs), place the runtime tensors in the
 * arena (placeTensors), bind the kernels now that every buffer has its place (their scratch one
 * SharedScratch), then the address tables the kernel calls take (kernelAddresses).
 */
import type { Graph, Node, TensorData } from '../graph/ir.js';
import type { Inferred } from '../passes/infer.js';

/** A step's input: an arena tensor by name, or a constant's data; undefined where omitted. */
export type StepInput = { name: string } | { data: TensorData } | undefined;

/** The tensors that must stay readable after a run: those asked for and the model outputs. */
export function keptTensors(graph: Graph, keep: Iterable<string> | undefined): Set<string> {
  const kept = new Set(keep ?? []);
  for (const o of graph.outputs) kept.add(o.name);
  return kept;
}

/** Per input of a node, what its step reads. */
export function stepInputs(node: Node, inf: Inferred): StepInput[] {
  return node.inputs.map((name) => {
    if (!name) return undefined;
    const value = inf.values.get(name)!.value;
    return value ? { data: value.data } : { name };
  });
}

/** The model outputs known without running (folded constants), by name. */
export function constantOutputs(graph: Graph, inf: Inferred): Map<string, TensorData> {
  const out = new Map<string, TensorData>();
  for (const o of graph.outputs) {
    const v = inf.values.get(o.name)!;
    if (v.value) out.set(o.name, v.value.data);
  }
  return out;
}

/** One scratch region shared by every step (steps run one at a time): kernels ask for bytes
 *  while they are bound, and get the region, sized for the largest request, once all have. */
export class SharedScratch {
  private readonly requests: { ptr: number; bytes: number }[] = [];

  request(bytes: number): { readonly ptr: number } {
    const sc = { ptr: 0, bytes };
    this.requests.push(sc);
    return sc;
  }

  /** Reserve the region (when anything asked for scratch) and hand it to every request. */
  place(alloc: (bytes: number) => number): void {
    if (!this.requests.length) return;
    const ptr = alloc(Math.max(...this.requests.map((sc) => sc.bytes)));
    for (const sc of this.requests) sc.ptr = ptr;
  }
}

/** Per step, the byte offsets its kernel call takes: its runtime inputs' (0 for constants and
 *  omitted inputs) and its outputs'. */
export function kernelAddresses(steps: { ins: StepInput[]; outs: string[] }[], ptr: Map<string, number>): { ins: number[][]; outs: number[][] } {
  return {
    ins: steps.map((s) => s.ins.map((x) => (x && 'name' in x ? ptr.get(x.name)! : 0))),
    outs: steps.map((s) => s.outs.map((o) => (o ? ptr.get(o) ?? 0 : 0))),
  };
}

export interface Lifetime {
  name: string;
  bytes: number;
  /** Step that writes it (-1 for model inputs) and last step that reads it. */
  first: number;
  last: number;
}

export interface ArenaPlan {
  offsets: Map<string, number>;
  size: number;
}

const ALIGN = 16;

export function planArena(tensors: Lifetime[]): ArenaPlan {
  const sorted = [...tensors].sort((a, b) => b.bytes - a.bytes || a.first - b.first || (a.name < b.name ? -1 : 1));
  const offsets = new Map<string, number>();
  const aligned = (t: Lifetime) => Math.ceil(t.bytes / ALIGN) * ALIGN;
  // Placed tensors listed under every step they live through: finding the ones a tensor overlaps
  // reads only its own steps, so that long chains of short-lived tensors plan in linear time.
  let lo = 0, hi = 0;
  for (const t of sorted) [lo, hi] = [Math.min(lo, t.first), Math.max(hi, t.last)];
  const alive: number[][] = Array.from({ length: hi - lo + 1 }, () => []);
  const placedOffset: number[] = [];
  const seenBy = new Int32Array(sorted.length).fill(-1);
  let size = 0;
  sorted.forEach((t, k) => {
    const bytes = aligned(t);
    const overlapping: number[] = [];
    for (let step = t.first; step <= t.last; step++) {
      for (const j of alive[step - lo]) {
        if (seenBy[j] !== k) [seenBy[j], overlapping[overlapping.length]] = [k, j];
      }
    }
    overlapping.sort((a, b) => placedOffset[a] - placedOffset[b]);
    let offset = 0;
    for (const j of overlapping) {
      if (offset + bytes <= placedOffset[j]) break;
      offset = Math.max(offset, placedOffset[j] + aligned(sorted[j]));
    }
    placedOffset[k] = offset;
    for (let step = t.first; step <= t.last; step++) alive[step - lo].push(k);
    offsets.set(t.name, offset);
    size = Math.max(size, offset + bytes);
  });
  return { offsets, size };
}

/** What placeTensors needs of a step: the arena tensors it reads and writes. */
export interface StepTensors {
  ins: ({ name: string } | object | undefined)[];
  outs: string[];
}

/**
 * Place the runtime tensors of an executor's steps in one arena: lifetimes per buffer root
 * (tensors an alias op writes share their input's root), model inputs live from step -1 and
 * `keep` to the end, then planArena and the arena reserved with `alloc`. Returns the address of
 * every tensor in `names` that has a buffer, and the arena size.
 */
export function placeTensors(o: {
  steps: StepTensors[];
  inputs: string[];
  keep: Iterable<string>;
  names: Iterable<string>;
  rootOf: (name: string) => string;
  bytes: (root: string) => number;
  alloc: (bytes: number) => number;
}): { ptr: Map<string, number>; size: number } {
  const life = new Map<string, Lifetime>();
  const touch = (name: string, step: number) => {
    const r = o.rootOf(name);
    let l = life.get(r);
    if (!l) life.set(r, (l = { name: r, bytes: o.bytes(r), first: step, last: step }));
    l.first = Math.min(l.first, step);
    l.last = Math.max(l.last, step);
  };
  for (const name of o.inputs) touch(name, -1);
  o.steps.forEach((s, i) => {
    s.outs.forEach((t) => t && touch(t, i));
    s.ins.forEach((x) => x && 'name' in x && touch((x as { name: string }).name, i));
  });
  for (const name of o.keep) if (life.has(o.rootOf(name))) touch(name, o.steps.length);
  const plan = planArena([...life.values()]);
  const base = o.alloc(plan.size);
  const ptr = new Map<string, number>();
  for (const name of o.names) {
    const r = o.rootOf(name);
    if (plan.offsets.has(r)) ptr.set(name, base + plan.offsets.get(r)!);
  }
  return { ptr, size: plan.size };
}

/** Typed views of every step's inputs and outputs (constants as their data), for the reference
 *  steps; valid until the memory grows. */
export function stepViews(
  steps: { ins: StepInput[]; outs: string[] }[],
  view: (name: string) => TensorData,
): { ins: TensorData[]; outs: TensorData[] }[] {
  return steps.map((s) => ({
    ins: s.ins.map((x) => (!x ? new Float32Array(0) : 'data' in x ? x.data : view(x.name))),
    outs: s.outs.map((o) => (o ? view(o) : new Float32Array(0))),
  }));
}

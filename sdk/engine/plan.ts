/**
 * Static memory plan: every runtime tensor gets a fixed offset in one arena, reused by tensors
 * whose lifetimes do not overlap. Greedy by size (largest first, lowest fitting offset), which is
 * what TFLite's arena planner does and lands close to the peak of live bytes on CNNs.
 */
import type { TensorData } from '../graph/ir.js';

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
  const placed: { t: Lifetime; offset: number }[] = [];
  const offsets = new Map<string, number>();
  let size = 0;
  for (const t of sorted) {
    const bytes = Math.ceil(t.bytes / ALIGN) * ALIGN;
    const overlapping = placed
      .filter((p) => p.t.first <= t.last && t.first <= p.t.last)
      .sort((a, b) => a.offset - b.offset);
    let offset = 0;
    for (const p of overlapping) {
      if (offset + bytes <= p.offset) break;
      offset = Math.max(offset, p.offset + Math.ceil(p.t.bytes / ALIGN) * ALIGN);
    }
    placed.push({ t, offset });
    offsets.set(t.name, offset);
    size = Math.max(size, offset + bytes);
  }
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
  steps: { ins: ({ name: string } | { data: TensorData } | undefined)[]; outs: string[] }[],
  view: (name: string) => TensorData,
): { ins: TensorData[]; outs: TensorData[] }[] {
  return steps.map((s) => ({
    ins: s.ins.map((x) => (!x ? new Float32Array(0) : 'data' in x ? x.data : view(x.name))),
    outs: s.outs.map((o) => (o ? view(o) : new Float32Array(0))),
  }));
}

/**
 * The float executor. Compiles an analysed graph once per input shape into a list of steps over
 * one WASM memory: constants are packed by the kernels that consume them, runtime tensors live in
 * an arena under a static plan, and a forward pass only runs the steps. Every runtime tensor is
 * float32; integer-typed tensors (e.g. a peer's QuantizeLinear outputs) hold exact integer values.
 */
import { fail } from '../errors.js';
import type { Inferred } from '../passes/infer.js';
import { numel, type Graph, type Node, type TensorData } from '../graph/ir.js';
import { opModule } from '../ops/index.js';
import { ACT, type Activation, type KernelCall, type KernelEnv, type OpModule, type ValueMeta } from '../ops/op.js';
import {
  SharedScratch, constantOutputs, kernelAddresses, keptTensors, placeTensors, stepInputs, stepViews, type StepInput,
} from './plan.js';
import type { WasmRuntime } from './wasm.js';

export interface FloatPlanOptions {
  /** Tensors that must stay readable after run() (they get buffers of their own). */
  keep?: Iterable<string>;
  /** Tensors an onStep observer reads right after their step: never fused away, though their
   *  memory is reused afterwards as usual. */
  observe?: Iterable<string>;
  /** Use only the TypeScript references, one step per node (for testing the kernels). */
  referenceOnly?: boolean;
}

/** Activation nodes folded into the step of the node that produces their input: one
 *  activation, or SiLU's Sigmoid and Mul (x * Sigmoid(x)). */
interface Fused {
  nodes: Node[];
  activation: Activation;
  /** The nodes' references applied in place to the producer's output (steps without a kernel). */
  reference(y: TensorData): void;
}

interface Step {
  node: Node;
  mod: OpModule<unknown>;
  params: unknown;
  ins: StepInput[];
  outs: string[];
  call?: KernelCall;
  fused?: Fused;
}

export class FloatPlan {
  readonly arenaBytes: number;
  readonly inputs: { name: string; shape: number[] }[];
  readonly outputs: { name: string; shape: number[] }[];
  private readonly steps: Step[] = [];
  private readonly ptr: Map<string, number>;
  private readonly size = new Map<string, number>();
  private readonly constOutputs: Map<string, TensorData>;
  private viewsFor: ArrayBuffer | undefined;
  private views: { ins: TensorData[]; outs: TensorData[] }[] = [];
  private kernelIns: number[][] = [];
  private kernelOuts: number[][] = [];

  constructor(private readonly rt: WasmRuntime, graph: Graph, inf: Inferred, options: FloatPlanOptions = {}) {
    const keep = keptTensors(graph, options.keep);
    // Alias ops share their input's buffer: map every tensor to the root that owns the memory.
    const root = new Map<string, string>();
    const rootOf = (n: string) => root.get(n) ?? n;
    this.planSteps(graph, inf, keep, root);
    if (!options.referenceOnly) this.fuseActivations(new Set([...keep, ...(options.observe ?? [])]), rootOf);
    this.constOutputs = constantOutputs(graph, inf);
    const runtime = (name: string) => !!name && !inf.values.get(name)?.value;
    const placed = placeTensors({
      steps: this.steps, inputs: graph.inputs.map((v) => v.name), keep: [...keep].filter(runtime), names: this.size.keys(),
      rootOf, bytes: (r) => this.size.get(r)! * 4, alloc: (bytes) => rt.alloc(bytes, 'the activation arena'),
    });
    this.arenaBytes = placed.size;
    this.ptr = placed.ptr;
    if (!options.referenceOnly) this.bindKernels(inf);
    ({ ins: this.kernelIns, outs: this.kernelOuts } = kernelAddresses(this.steps, this.ptr));
    const shapeOf = (n: string) => inf.values.get(n)!.shape;
    this.inputs = graph.inputs.map((v) => ({ name: v.name, shape: shapeOf(v.name) }));
    this.outputs = graph.outputs.map((v) => ({ name: v.name, shape: shapeOf(v.name) }));
  }

  /** One step per node that runs (not folded, not an alias of its input), and every tensor's size. */
  private planSteps(graph: Graph, inf: Inferred, keep: Set<string>, root: Map<string, string>): void {
    const runtime = (name: string) => !!name && !inf.values.get(name)?.value;
    for (const v of graph.inputs) this.size.set(v.name, numel(inf.values.get(v.name)!.shape));
    for (const node of inf.order) {
      const c = inf.compiled.get(node)!;
      if (c.outputs.every((o) => o.value)) continue;
      const mod = opModule(node)!;
      node.outputs.forEach((o, k) => { if (o) this.size.set(o, numel(c.outputs[k].shape)); });
      if (mod.alias && runtime(node.inputs[0]) && !keep.has(node.outputs[0])) {
        root.set(node.outputs[0], root.get(node.inputs[0]) ?? node.inputs[0]);
        continue;
      }
      this.steps.push({ node, mod, params: c.params, ins: stepInputs(node, inf), outs: node.outputs });
    }
  }

  /** Bind the kernels now that every buffer has its place (they pack their constants). */
  private bindKernels(inf: Inferred): void {
    const rt = this.rt;
    const scratch = new SharedScratch();
    for (const s of this.steps) {
      if (!s.mod.kernel) continue;
      const env: KernelEnv = {
        exports: rt.exports,
        inputs: s.node.inputs.map((i) => (i ? inf.values.get(i) : undefined)) as (ValueMeta | undefined)[],
        alloc: (bytes) => rt.alloc(bytes, `packed weights of node "${s.node.name}"`),
        f32: (p, n) => rt.f32(p, n),
        i32: (p, n) => new Int32Array(rt.memory.buffer, p, n),
        activation: s.fused?.activation,
        scratch: (bytes) => scratch.request(bytes),
      };
      s.call = s.mod.kernel(s.params, env);
    }
    scratch.place((bytes) => rt.alloc(bytes, 'kernel scratch'));
  }

  /**
   * Let a producer whose kernels apply activations on store (Conv, Gemm, ...) absorb the
   * activation that is the only reader of its output, or SiLU (its output read only by a Sigmoid
   * and by a Mul of it with that Sigmoid's output), unless a tensor removed must stay visible.
   * The kernels compute the fused activation with the same operations as its own steps, so the
   * outputs are the same bits.
   */
  private fuseActivations(keep: Set<string>, rootOf: (name: string) => string): void {
    const readersOf = new Map<string, Step[]>();
    for (const s of this.steps) {
      for (const x of s.ins) {
        if (!x || !('name' in x)) continue;
        const r = rootOf(x.name);
        readersOf.set(r, [...(readersOf.get(r) ?? []), s]);
      }
    }
    const reads = (s: Step, t: string) => s.ins.map((x) => (x && 'name' in x ? x.name : undefined)).filter((n) => n === t).length;
    const single = (t: string) => !keep.has(t) && readersOf.get(t)?.length === 1;
    const absorbed = new Set<Step>();
    const absorb = (s: Step, by: Step[], activation: Activation, reference: (y: TensorData) => void) => {
      s.fused = { nodes: by.map((a) => a.node), activation, reference };
      s.outs = by[by.length - 1].outs;
      for (const a of by) absorbed.add(a);
    };
    for (const s of this.steps) {
      const t = s.outs[0];
      if (absorbed.has(s) || !s.mod.fusesActivation || s.outs.length !== 1 || keep.has(t)) continue;
      const readers = readersOf.get(t) ?? [];
      if (readers.length === 1) {
        const [a] = readers;
        const activation = a.mod.activation?.(a.params);
        const input = a.ins[0];
        if (!activation || !input || !('name' in input) || input.name !== t || reads(a, t) !== 1) continue;
        absorb(s, [a], activation, (y) => a.mod.reference(a.params, [y], [y]));
        continue;
      }
      const sig = readers.find((a) => a.node.op === 'Sigmoid' && a.mod.activation?.(a.params)?.code === ACT.SIGMOID);
      const mul = readers.find((a) => a.node.op === 'Mul');
      if (readers.length !== 2 || !sig || !mul || reads(sig, t) !== 1 || sig.outs.length !== 1 || !single(sig.outs[0])) continue;
      const u = sig.outs[0];
      const [m0, m1] = mul.ins.map((x) => (x && 'name' in x ? x.name : undefined));
      if (mul.ins.length !== 2 || !((m0 === t && m1 === u) || (m0 === u && m1 === t)) || readersOf.get(u)![0] !== mul) continue;
      absorb(s, [sig, mul], { code: ACT.SILU, p0: 0, p1: 0 }, (y) => {
        const g = new Float32Array(y.length);
        sig.mod.reference(sig.params, [y], [g]);
        mul.mod.reference(mul.params, m0 === t ? [y, g] : [g, y], [y]);
      });
    }
    let kept = 0;
    for (const s of this.steps) if (!absorbed.has(s)) this.steps[kept++] = s;
    this.steps.length = kept;
  }

  /** What runs: per step its node, whether a WASM kernel runs it, and the fused activation. */
  describe(): { node: string; op: string; kernel: boolean; fused?: string }[] {
    return this.steps.map((s) => ({ node: s.node.name, op: s.node.op, kernel: !!s.call, fused: s.fused?.nodes.map((n) => n.op).join('+') }));
  }

  /** Views for the reference steps, rebuilt only when the memory has grown. */
  private refreshViews(): void {
    if (this.viewsFor === this.rt.memory.buffer) return;
    this.viewsFor = this.rt.memory.buffer;
    this.views = stepViews(this.steps, (name) => this.view(name));
  }

  /** Byte offset and element count of a runtime tensor in WASM memory (valid right after the
   *  step that writes it; later steps may reuse the memory unless the tensor is kept). */
  location(name: string): { ptr: number; length: number } | undefined {
    const ptr = this.ptr.get(name);
    return ptr === undefined ? undefined : { ptr, length: this.size.get(name)! };
  }

  /** A view of a runtime tensor's current contents (valid until the next run or memory growth). */
  view(name: string): Float32Array {
    const p = this.ptr.get(name);
    if (p === undefined) fail('BAD_INPUT', `tensor "${name}" is not kept by this plan`);
    return this.rt.f32(p, this.size.get(name)!);
  }

  /** Copy the feeds in, run every step, return copies of the outputs. */
  run(feeds: Record<string, Float32Array>, onStep?: (node: Node) => void): Record<string, Float32Array> {
    for (const v of this.inputs) {
      const data = feeds[v.name];
      const n = this.size.get(v.name)!;
      if (!data) fail('BAD_INPUT', `missing input "${v.name}"`);
      if (data.length !== n) fail('BAD_INPUT', `input "${v.name}" has ${data.length} values; shape [${v.shape}] needs ${n}`);
      this.view(v.name).set(data);
    }
    this.refreshViews();
    for (let i = 0; i < this.steps.length; i++) {
      const s = this.steps[i];
      if (s.call) {
        s.call(this.kernelIns[i], this.kernelOuts[i]);
      } else {
        const { ins, outs } = this.views[i];
        s.mod.reference(s.params, ins, outs);
        s.fused?.reference(outs[0]);
      }
      onStep?.(s.node);
      if (s.fused) for (const n of s.fused.nodes) onStep?.(n);
    }
    const out: Record<string, Float32Array> = {};
    for (const o of this.outputs) {
      const c = this.constOutputs.get(o.name);
      out[o.name] = c ? Float32Array.from(c) : this.view(o.name).slice();
    }
    return out;
  }
}

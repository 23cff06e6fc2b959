/**
 * The fixed-point executor: runs a prepared graph under a QuantSpec with the device's integer
 * arithmetic (DESIGN.md §5, rules in device/spec.ts, each op's integer reference in its module).
 *
 *   const plan = await FixedPlan.create(model, batch, spec);   // or new FixedPlan(rt, graph, inferred, spec)
 *   const out = plan.run(feeds);            // float feeds in, dequantized float outputs out
 *   plan.layers                             // the steps: nodes (a layer + its fused activation),
 *                                           // output tensors with shapes and formats, fallback flag
 *   plan.run(feeds, (layer) => plan.tensor(layer.outputs[0].name))   // every layer's integers as
 *                                           // they are computed (what trace dumps use)
 *   plan.tensor(name) / plan.dequantized(name)   // a tensor's integers / float view after run
 *                                           // (for tensors named in options.keep)
 *
 * Calibration, cheaply and without re-planning:
 *   plan.weightLayers                       // node names of the layers with a LayerQ
 *   plan.setBias(node, bias)                // new float bias -> new device bias, next run uses it
 *   plan.runWithMeans(feeds, 'output')      // + per-output-channel means of every weight layer's
 *                                           //   output after its activation (dequantized)
 *   plan.runWithMeans(feeds, 'accumulator') // + the same of its accumulator (bias added, before
 *                                           //   shift and saturation), at the accumulator scale
 *
 * Inputs are quantized with their TensorQ (round half away from zero). Integer tensors live in
 * one static arena; ops that only move data share their input's buffer when the formats agree.
 * A Relu/Clip that is the only reader of a weight layer's or an Add's output is fused as the
 * layer's saturation, and the activation's output format is the layer's. Ops with no documented
 * device arithmetic run as "float fallback": dequantize, the float reference, requantize.
 */
import { fail } from '../errors.js';
import { check, checkBatch, checkFeeds, isRecord } from '../guard.js';
import type { Inferred } from '../passes/infer.js';
import { consumers, numel, type Graph, type Node, type TensorData } from '../graph/ir.js';
import { QCODE } from '../ops/fixed.js';
import { activationClip, fusedActivation, opModule, weightFacts, weightOps } from '../ops/index.js';
import type { Clip, FixedContext, FixedKernelEnv, FixedOp, KernelCall, LayerArith, OpModule, StepIntegers, ValueMeta } from '../ops/op.js';
import {
  dequantizeValue, qRange, qType, quantizeValue, sameFormat, saturationBounds, type QType, type QuantSpec, type TensorQ,
} from '../device/spec.js';
import {
  SharedScratch, constantOutputs, kernelAddresses, keptTensors, placeTensors, stepInputs, stepViews, type StepInput,
} from './plan.js';
import { WasmRuntime } from './wasm.js';
import { remembered } from '../util/memo.js';

export interface FixedPlanOptions {
  /** Tensors that must stay readable after run() (they get buffers of their own). */
  keep?: Iterable<string>;
  /** Run only the TypeScript references (for testing the kernels against them). */
  referenceOnly?: boolean;
}

export type IntArray = Uint8Array | Int8Array | Uint16Array | Int16Array;

export interface FixedTensor {
  name: string;
  shape: number[];
  q: TensorQ;
  type: QType;
}

export interface FixedLayer {
  /** Position in execution order. */
  index: number;
  /** The ONNX nodes computed by this step: an op and the activation fused into it. */
  nodes: Node[];
  outputs: FixedTensor[];
  /** Runs the float reference between dequantize and requantize (no documented device form). */
  fallback: boolean;
}

export type MeansOf = 'output' | 'accumulator';

/** One step's integers: its runtime tensors' device types and scales, how it computes, and the
 *  parameters its op derived (a weight layer's device bias and shifts, an Add's factors, ...). */
export interface StepRecord {
  ops: string[];
  inputs: { name: string; type: QType; scaleLog2: number }[];
  outputs: { name: string; type: QType; scaleLog2: number }[];
  /** 'integer': the device arithmetic below; 'float fallback': dequantize, float op, requantize;
   *  'shared buffer': the output is the input's integers reinterpreted. */
  arithmetic: 'integer' | 'float fallback' | 'shared buffer';
  params?: StepIntegers;
}

/** What a plan needs of a model: its prepared graph at a batch size (Model has it). */
export interface PreparedModel {
  prepared(batch: number): { graph: Graph; inferred: Inferred };
}

const VIEWS: Record<QType, new (buffer: ArrayBuffer, offset: number, length: number) => IntArray> = {
  uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array,
};

interface Step {
  layer: FixedLayer;
  mod: OpModule<unknown>;
  params: unknown;
  ins: StepInput[];
  outs: string[];
  kind: 'fixed' | 'fallback' | 'alias';
  fixed?: FixedOp<unknown, unknown>;
  f?: unknown;
  arith?: LayerArith;
  /** Weight layers: output channels as [outer, channels, inner] of the output. */
  channels?: [number, number, number];
  call?: KernelCall;
  /** Float fallback: float buffers for the inputs and outputs. */
  floats?: { ins: (TensorData | undefined)[]; outs: Float32Array[] };
  /** Float fallback of an element-wise op: its result for every input integer, from `lo`. The
   *  same dequantize -> float reference -> requantize, tabulated once instead of per element. */
  table?: { lo: number; values: Int32Array };
}

export class FixedPlan {
  readonly arenaBytes: number;
  readonly inputs: FixedTensor[];
  readonly outputs: FixedTensor[];
  readonly layers: FixedLayer[] = [];
  /** Node names of the weight layers that run in fixed point (those with a LayerQ). */
  readonly weightLayers: string[] = [];
  private readonly steps: Step[] = [];
  private readonly tensors = new Map<string, FixedTensor>();
  private readonly ptr: Map<string, number>;
  private readonly constOutputs: Map<string, TensorData>;
  private readonly fusedInto = new Map<string, string>();
  private readonly byNode = new Map<string, Step>();
  private readonly staging = new Map<string, number>();
  private readonly quantize?: (...args: number[]) => unknown;
  private readonly channelSums?: (...args: number[]) => unknown;
  private readonly sumsPtr: number;
  private viewsFor: ArrayBuffer | undefined;
  private views: { ins: TensorData[]; outs: TensorData[] }[] = [];
  private kernelIns: number[][] = [];
  private kernelOuts: number[][] = [];

  /** A plan for a model (a Model) at a batch size, on a WASM instance of its own. */
  static async create(model: PreparedModel, batch: number, spec: QuantSpec, options: FixedPlanOptions = {}): Promise<FixedPlan> {
    check(isRecord(model) && typeof model.prepared === 'function', 'FixedPlan.create', 'the model must be a Model (from loadModel)');
    checkBatch(batch, model, 'FixedPlan.create');
    check(isRecord(spec) && isRecord(spec.tensors) && isRecord(spec.layers), 'FixedPlan.create', 'the spec must be a QuantSpec {tensors, layers, biasMode} (calibration.spec)');
    const { graph, inferred } = model.prepared(batch);
    return new FixedPlan(await WasmRuntime.create(), graph, inferred, spec, options);
  }

  constructor(private readonly rt: WasmRuntime, graph: Graph, inf: Inferred, spec: QuantSpec, options: FixedPlanOptions = {}) {
    const keep = keptTensors(graph, options.keep);
    checkSpecLayers(graph, spec);
    const isRuntime = (name: string) => !!name && !inf.values.get(name)?.value;
    const tensorOf = (name: string): FixedTensor => {
      let t = this.tensors.get(name);
      if (!t) this.tensors.set(name, (t = fixedTensor(name, spec, inf)));
      return t;
    };
    // Alias ops share their input's buffer: map every tensor to the root that owns the memory.
    const root = new Map<string, string>();
    const rootOf = (n: string) => root.get(n) ?? n;
    this.inputs = graph.inputs.map((v) => tensorOf(v.name));
    this.planSteps(graph, inf, spec, keep, root, tensorOf);
    this.constOutputs = constantOutputs(graph, inf);
    const placed = placeTensors({
      steps: this.steps, inputs: graph.inputs.map((v) => v.name), keep: [...keep].filter((t) => isRuntime(t) && this.tensors.has(t)),
      names: this.tensors.keys(), rootOf, alloc: (bytes) => rt.alloc(bytes, 'the activation arena'),
      bytes: (r) => { const t = this.tensors.get(r)!; return numel(t.shape) * (t.q.bits / 8); },
    });
    this.arenaBytes = placed.size;
    this.ptr = placed.ptr;
    this.outputs = graph.outputs.filter((o) => !this.constOutputs.has(o.name)).map((o) => tensorOf(o.name));
    const scratch = new SharedScratch();
    if (!options.referenceOnly) {
      this.bindKernels(inf, scratch);
      for (const v of this.inputs) this.staging.set(v.name, rt.alloc(numel(v.shape) * 4, `input "${v.name}"`));
      this.quantize = rt.kernel('quantize_f32_q');
      this.channelSums = rt.kernel('channel_sums_q');
    }
    scratch.place((bytes) => rt.alloc(bytes, 'kernel scratch'));
    this.sumsPtr = rt.alloc(8 * Math.max(0, ...this.steps.map((s) => s.channels?.[1] ?? 0)), 'channel sums');
    ({ ins: this.kernelIns, outs: this.kernelOuts } = kernelAddresses(this.steps, this.ptr));
  }

  /** One step per node that runs (folded constants and fused activations aside), in order. */
  private planSteps(
    graph: Graph, inf: Inferred, spec: QuantSpec, keep: Set<string>, root: Map<string, string>, tensorOf: (name: string) => FixedTensor,
  ): void {
    const isRuntime = (name: string) => !!name && !inf.values.get(name)?.value;
    const readers = consumers(graph);
    const graphOutputs = new Set(graph.outputs.map((o) => o.name));
    const paramsOf = (n: Node) => inf.compiled.get(n)!.params;
    const floatNodes = new Set(spec.floatNodes ?? []);
    const fused = new Set<Node>();
    for (const node of inf.order) {
      const c = inf.compiled.get(node)!;
      if (c.outputs.every((o) => o.value) || fused.has(node)) continue;
      const mod = opModule(node)! as OpModule<unknown>;
      const layerQ = spec.layers[node.name];
      const weightOp = !!mod.weights && !isRuntime(node.inputs[1]);
      const fixed = (weightOp && !layerQ) || floatNodes.has(node.name) ? undefined : mod.fixed;
      // A single-reader Relu/Clip becomes the saturation of the op before it.
      const fusion = fixed?.fusesActivation && node.outputs.length === 1 ? fusedActivation(node, readers, graphOutputs, paramsOf) : undefined;
      if (fusion) {
        fused.add(fusion.node);
        this.fusedInto.set(node.outputs[0], fusion.node.outputs[0]);
      }
      this.steps.push(this.planStep(node, mod, fixed, fusion, inf, spec, keep, root, tensorOf));
    }
  }

  /** The step of one node (and the activation fused into it): its integer arithmetic compiled,
   *  or its float fallback's buffers or table. */
  private planStep(
    node: Node, mod: OpModule<unknown>, fixedOp: FixedOp<unknown, unknown> | undefined, fusion: { node: Node; clip: Clip } | undefined,
    inf: Inferred, spec: QuantSpec, keep: Set<string>, root: Map<string, string>, tensorOf: (name: string) => FixedTensor,
  ): Step {
    const isRuntime = (name: string) => !!name && !inf.values.get(name)?.value;
    const c = inf.compiled.get(node)!;
    const metas = node.inputs.map((i) => (i ? inf.values.get(i) : undefined)) as (ValueMeta | undefined)[];
    const ins = stepInputs(node, inf);
    const act = fusion?.node, clip = fusion?.clip;
    // The seed's rule: an activation saturates at its output type's limits only, unless the
    // spec keeps the Clip's own bounds (its unsigned type is ReLU's saturation at 0 either way).
    const own = spec.keepClipBounds ? clip ?? activationClip(node, c.params) : undefined;
    const outs = act ? [act.outputs[0]] : node.outputs;
    const outT = outs.map((o) => (o ? tensorOf(o) : undefined));
    const inQ = node.inputs.map((i) => (isRuntime(i) ? tensorOf(i).q : undefined));
    let fixed = fixedOp;
    let f: unknown;
    if (fixed) {
      const ctx: FixedContext<unknown> = {
        node, params: c.params, inputs: metas, inQ, outQ: outT.map((t) => t!.q),
        bounds: outT.map((t) => saturationBounds(t!.q, own)), layer: spec.layers[node.name], biasMode: spec.biasMode,
      };
      f = fixed.compile(ctx);
      if (f === undefined) fixed = undefined;
    }
    const layer: FixedLayer = {
      index: this.layers.length, nodes: act ? [node, act] : [node], outputs: outT.filter((t): t is FixedTensor => !!t), fallback: !fixed,
    };
    this.layers.push(layer);
    const alias = !!fixed && mod.alias && isRuntime(node.inputs[0]) && sameFormat(inQ[0]!, outT[0]!.q) && !keep.has(outs[0]);
    if (alias) root.set(outs[0], root.get(node.inputs[0]) ?? node.inputs[0]);
    const step: Step = { layer, mod, params: c.params, ins, outs, kind: alias ? 'alias' : fixed ? 'fixed' : 'fallback', fixed, f };
    const arith = fixed?.arith?.(f);
    if (arith) {
      step.arith = arith;
      const shape = outT[0]!.shape;
      const axis = mod.weights!.channelAxis(shape.length);
      step.channels = [numel(shape.slice(0, axis)), shape[axis], numel(shape.slice(axis + 1))];
      this.weightLayers.push(node.name);
      this.byNode.set(node.name, step);
    }
    // Tabulated where the tensor has more elements than its input format has integers.
    if (!fixed && mod.elementwise && inQ[0] && outT[0] && numel(outT[0].shape) > 2 ** inQ[0].bits) {
      step.table = fallbackTable(mod, c.params, inQ[0], outT[0].q);
    } else if (!fixed) {
      step.floats = {
        ins: ins.map((x, k) => (!x ? undefined : 'data' in x ? x.data : new Float32Array(numel(metas[k]!.shape)))),
        outs: outs.map((o) => new Float32Array(o ? numel(inf.values.get(o)!.shape) : 0)),
      };
    }
    return step;
  }

  /** Bind the kernels now that every buffer has its place: lookup tables, the integer kernels
   *  (they pack their constants), then the float kernels of fallbacks. */
  private bindKernels(inf: Inferred, scratch: SharedScratch): void {
    const rt = this.rt;
    const floatKernels: Step[] = [];
    const lookup = rt.kernel('lookup_q');
    for (const s of this.steps) {
      if (s.table) {
        // A tabulated float fallback: the table in WASM memory, one lookup per element.
        const { lo, values } = s.table;
        const table = rt.alloc(values.length * 4, `lookup table of node "${s.layer.nodes[0].name}"`);
        new Int32Array(rt.memory.buffer, table, values.length).set(values);
        const [x, y] = [s.ins[0] as { name: string }, s.layer.outputs[0]];
        const [xc, yc, len] = [QCODE[this.tensors.get(x.name)!.type], QCODE[y.type], numel(y.shape)];
        s.call = ([xp], [yp]) => lookup(xp, xc, len, table, lo, yp, yc);
      }
      if (s.kind === 'fallback' && !s.table && s.mod.kernel) floatKernels.push(s);
      if (s.kind !== 'fixed' || !s.fixed!.kernel) continue;
      const env: FixedKernelEnv = {
        exports: rt.exports,
        alloc: (bytes) => rt.alloc(bytes, `packed weights of node "${s.layer.nodes[0].name}"`),
        scratch: (bytes) => scratch.request(bytes),
        buffer: () => rt.memory.buffer,
      };
      s.call = s.fixed!.kernel(s.f, env);
    }
    this.bindFloatKernels(floatKernels, inf);
  }

  /** Every step's integers by its first node's name, in execution order. */
  integers(): Record<string, StepRecord> {
    const io = (t: FixedTensor) => ({ name: t.name, type: t.type, scaleLog2: t.q.scaleLog2 });
    const out: Record<string, StepRecord> = {};
    for (const s of this.steps) {
      const params = s.kind === 'fixed' ? s.fixed!.describe?.(s.f) : undefined;
      out[s.layer.nodes[0].name] = {
        ops: s.layer.nodes.map((n) => n.op),
        inputs: s.ins.flatMap((x) => (x && 'name' in x ? [io(this.tensors.get(x.name)!)] : [])),
        outputs: s.layer.outputs.map(io),
        arithmetic: s.kind === 'fixed' ? 'integer' : s.kind === 'alias' ? 'shared buffer' : 'float fallback',
        ...(params && Object.keys(params).length ? { params } : {}),
      };
    }
    return out;
  }

  /** Steps that run as float fallback (no documented device arithmetic), by node names. */
  get fallbacks(): string[] {
    return this.layers.filter((l) => l.fallback).map((l) => l.nodes.map((n) => n.name).join('+'));
  }

  /** The integers of a runtime tensor as they are now (valid until the next run or memory growth). */
  tensor(name: string): IntArray {
    const t = this.tensors.get(name);
    const p = this.ptr.get(name);
    if (!t || p === undefined) {
      const into = this.fusedInto.get(name);
      fail('BAD_INPUT', into ? `tensor "${name}" is fused into the layer writing "${into}"` : `tensor "${name}" is not a runtime tensor of this plan`);
    }
    return new VIEWS[t.type](this.rt.memory.buffer, p, numel(t.shape));
  }

  /** A tensor's values as floats, q / 2^scaleLog2. */
  dequantized(name: string): Float32Array {
    const data = this.tensor(name);
    const step = dequantizeValue(1, this.tensors.get(name)!.q);
    const out = new Float32Array(data.length);
    for (let i = 0; i < data.length; i++) out[i] = data[i] * step;
    return out;
  }

  /** Give a weight layer a new float bias; the device bias is derived again for the next run. */
  setBias(node: string, bias: Float32Array | Float64Array): void {
    const s = this.byNode.get(node);
    if (!s) fail('BAD_INPUT', `"${node}" is not a weight layer of this plan (${this.weightLayers.length} are)`);
    if (bias.length !== s.arith!.channels) fail('BAD_INPUT', `node "${node}": bias needs ${s.arith!.channels} values, got ${bias.length}`);
    s.arith!.setBias(bias);
  }

  /** Quantize the feeds, run every step, return the dequantized outputs. */
  run(feeds: Record<string, Float32Array>, onLayer?: (layer: FixedLayer) => void): Record<string, Float32Array> {
    checkFeeds(feeds, 'FixedPlan.run');
    check(!(feeds instanceof Float32Array), 'FixedPlan.run', 'feeds must be a record of Float32Arrays by input name');
    for (const v of this.inputs) {
      const data = feeds[v.name];
      const n = numel(v.shape);
      if (!data) fail('BAD_INPUT', `missing input "${v.name}"`);
      if (data.length !== n) fail('BAD_INPUT', `input "${v.name}" has ${data.length} values; shape [${v.shape}] needs ${n}`);
      const staging = this.staging.get(v.name);
      if (staging !== undefined && this.quantize) {
        this.rt.f32(staging, n).set(data);
        const [lo, hi] = qRange(v.q.bits, v.q.signed);
        this.quantize(staging, n, 2 ** v.q.scaleLog2, lo, hi, this.ptr.get(v.name)!, QCODE[v.type]);
      } else {
        const y = this.tensor(v.name);
        for (let i = 0; i < n; i++) y[i] = quantizeValue(data[i], v.q);
      }
    }
    this.refreshViews();
    for (let i = 0; i < this.steps.length; i++) {
      const s = this.steps[i];
      if (s.call) s.call(this.kernelIns[i], this.kernelOuts[i]);
      else if (s.kind === 'fixed') s.fixed!.reference(s.f, this.views[i].ins, this.views[i].outs);
      else if (s.kind === 'fallback') this.runFallback(s, this.views[i]);
      onLayer?.(s.layer);
    }
    const out: Record<string, Float32Array> = {};
    for (const [name, data] of this.constOutputs) out[name] = Float32Array.from(data);
    for (const o of this.outputs) out[o.name] = this.dequantized(o.name);
    return out;
  }

  /**
   * Run and return, for every weight layer, the per-output-channel means over the batch and the
   * spatial positions: of its output after the fused activation ('output', dequantized), or of
   * its accumulator with the bias, before shift and saturation ('accumulator', at 2^-(in + w)).
   */
  runWithMeans(feeds: Record<string, Float32Array>, of: MeansOf): { outputs: Record<string, Float32Array>; means: Map<string, Float64Array> } {
    const sums = new Map<string, Float64Array>();
    const weighted = this.steps.filter((s) => s.arith);
    for (const s of weighted) {
      const a = new Float64Array(s.channels![1]);
      sums.set(s.layer.nodes[0].name, a);
      if (of === 'accumulator') s.arith!.accSums = a;
    }
    let outputs;
    try {
      outputs = this.run(feeds, of === 'output' ? (layer) => {
        const s = this.steps[layer.index];
        if (s.arith) this.outputSums(s, sums.get(layer.nodes[0].name)!);
      } : undefined);
    } finally {
      for (const s of weighted) s.arith!.accSums = undefined;
    }
    const means = new Map<string, Float64Array>();
    for (const s of weighted) {
      const [outer, , inner] = s.channels!;
      const scale = (c: number) => (of === 'output' ? dequantizeValue(1, s.layer.outputs[0].q) : 2 ** -s.arith!.accLog2[c]);
      means.set(s.layer.nodes[0].name, sums.get(s.layer.nodes[0].name)!.map((v, c) => (v / (outer * inner)) * scale(c)));
    }
    return { outputs, means };
  }

  private outputSums(s: Step, into: Float64Array): void {
    const [outer, c, inner] = s.channels!;
    const t = s.layer.outputs[0];
    if (this.channelSums) {
      const sums = new Float64Array(this.rt.memory.buffer, this.sumsPtr, c);
      sums.fill(0);
      this.channelSums(this.ptr.get(t.name)!, QCODE[t.type], outer, c, inner, this.sumsPtr);
      into.set(new Float64Array(this.rt.memory.buffer, this.sumsPtr, c));
      return;
    }
    const y = this.tensor(t.name);
    for (let i = 0; i < y.length; i++) into[Math.floor(i / inner) % c] += y[i];
  }

  /**
   * Float fallbacks whose op has a float kernel run it: dequantize the runtime inputs into float
   * buffers, the kernel, quantize the outputs (the same steps as runFallback, in WASM). The
   * buffers are one region that every such step reuses, since steps run one at a time.
   */
  private bindFloatKernels(steps: Step[], inf: Inferred): void {
    const rt = this.rt;
    const floats = (s: Step) => [...s.ins.map((x) => (x && 'name' in x ? this.tensors.get(x.name)! : undefined)), ...s.outs.map((o) => (o ? this.tensors.get(o)! : undefined))];
    const bytes = Math.max(0, ...steps.map((s) => floats(s).reduce((n, t) => n + (t ? Math.ceil(numel(t.shape) / 4) * 16 : 0), 0)));
    const region = rt.alloc(bytes, 'float fallback buffers');
    const dequantize = rt.kernel('dequantize_q_f32'), quantize = rt.kernel('quantize_f32_q');
    for (const s of steps) {
      const ts = floats(s);
      let at = region;
      const ptrs = ts.map((t) => {
        if (!t) return 0;
        const p = at;
        at += Math.ceil(numel(t.shape) / 4) * 16;
        return p;
      });
      const node = s.layer.nodes[0];
      const call = s.mod.kernel!(s.params, {
        exports: rt.exports,
        inputs: node.inputs.map((i) => (i ? inf.values.get(i) : undefined)) as (ValueMeta | undefined)[],
        alloc: (b) => rt.alloc(b, `packed weights of node "${node.name}"`),
        f32: (p, n) => rt.f32(p, n),
        i32: (p, n) => new Int32Array(rt.memory.buffer, p, n),
      });
      if (!call) continue;
      const n = s.ins.length;
      const [fin, fout] = [ptrs.slice(0, n), ptrs.slice(n)];
      s.call = (ins, outs) => {
        for (let k = 0; k < n; k++) {
          const t = ts[k];
          if (t) dequantize(ins[k], QCODE[t.type], numel(t.shape), 2 ** -t.q.scaleLog2, fin[k]);
        }
        call(fin, fout);
        for (let k = 0; k < fout.length; k++) {
          const t = ts[n + k];
          if (!t) continue;
          const [lo, hi] = qRange(t.q.bits, t.q.signed);
          quantize(fout[k], numel(t.shape), 2 ** t.q.scaleLog2, lo, hi, outs[k], QCODE[t.type]);
        }
      };
    }
  }

  private runFallback(s: Step, views: { ins: TensorData[]; outs: TensorData[] }): void {
    if (s.table) {
      const { lo, values } = s.table;
      const [x] = views.ins, [y] = views.outs;
      for (let i = 0; i < y.length; i++) y[i] = values[x[i] - lo];
      return;
    }
    const fl = s.floats!;
    s.ins.forEach((x, k) => {
      if (!x || 'data' in x) return;
      const q = this.tensors.get(x.name)!.q;
      const v = views.ins[k];
      const f = fl.ins[k]!;
      for (let i = 0; i < f.length; i++) f[i] = dequantizeValue(v[i], q);
    });
    s.mod.reference(s.params, fl.ins.map((x) => x ?? new Float32Array(0)), fl.outs);
    s.outs.forEach((o, k) => {
      if (!o) return;
      const q = this.tensors.get(o)!.q;
      const y = views.outs[k];
      const f = fl.outs[k];
      for (let i = 0; i < f.length; i++) y[i] = quantizeValue(f[i], q);
    });
  }

  /** Views for the reference steps, rebuilt only when the memory has grown. */
  private refreshViews(): void {
    if (this.viewsFor === this.rt.memory.buffer) return;
    this.viewsFor = this.rt.memory.buffer;
    this.views = stepViews(this.steps, (name) => this.tensor(name));
  }
}

/**
 * The float fallback of an element-wise op for every integer of the input format. 16-bit tables
 * cost 65536 float evaluations each, and mixed precision's sensitivity pass builds a plan per
 * candidate (YOLOX-nano: 70 SiLUs): the last tables per op (its params) and pair of formats are
 * kept. Plans copy them into their memory and never write them.
 */
function fallbackTable(mod: OpModule<unknown>, params: unknown, inQ: TensorQ, outQ: TensorQ): { lo: number; values: Int32Array } {
  const owner = (params !== null && typeof params === 'object' ? params : mod) as object;
  const key = `${inQ.bits},${+inQ.signed},${inQ.scaleLog2}:${outQ.bits},${+outQ.signed},${outQ.scaleLog2}`;
  return remembered(tables, owner, key, TABLES_PER_OP, () => tabulate(mod, params, inQ, outQ));
}

const TABLES_PER_OP = 8;
const tables = new WeakMap<object, Map<string, { lo: number; values: Int32Array }>>();

function tabulate(mod: OpModule<unknown>, params: unknown, inQ: TensorQ, outQ: TensorQ): { lo: number; values: Int32Array } {
  const [lo, hi] = qRange(inQ.bits, inQ.signed);
  const x = Float32Array.from({ length: hi - lo + 1 }, (_, i) => dequantizeValue(lo + i, inQ));
  const y = new Float32Array(x.length);
  mod.reference(params, [x], [y]);
  return { lo, values: Int32Array.from(y, (v) => quantizeValue(v, outQ)) };
}

/** Refuse a spec naming a layer the graph has no weight node for. */
function checkSpecLayers(graph: Graph, spec: QuantSpec): void {
  const nodeNames = new Map(graph.nodes.map((n) => [n.name, n]));
  for (const name of Object.keys(spec.layers)) {
    const n = nodeNames.get(name);
    if (!n || !weightFacts(n)) fail('BAD_INPUT', `quantization spec: layer "${name}" is not a ${weightOps().join('/')} node of the graph`);
  }
}

/** A runtime tensor with the format the spec gives it. */
function fixedTensor(name: string, spec: QuantSpec, inf: Inferred): FixedTensor {
  const q = spec.tensors[name];
  if (!q) fail('BAD_INPUT', `quantization spec: no format (TensorQ) for tensor "${name}"`);
  if ((q.bits !== 8 && q.bits !== 16) || !Number.isInteger(q.scaleLog2)) {
    fail('BAD_INPUT', `quantization spec: tensor "${name}" needs bits 8 or 16 and an integer scaleLog2`);
  }
  return { name, shape: inf.values.get(name)!.shape, q, type: qType(q) };
}

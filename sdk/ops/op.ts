/**
 * The contract every op module fulfils. One module per op (or per family of ops sharing one
 * rule, like broadcasting arithmetic) holds, in one place:
 *  - `compile`: reads attributes and constant inputs (in every opset's form), validates them and
 *    infers output dtypes and shapes. Its result `params` drives everything below.
 *  - `reference`: the float reference, plain readable TS over typed arrays. It is also what
 *    constant folding runs, so it works for any element type (int64 shape chains included).
 *  - `kernel`: optional binding to a WASM kernel for the float engine.
 *  - `fixed`: optional fixed-point reference and kernel (the device's integer arithmetic).
 */
import { fail } from '../errors.js';
import { ACT, GEOM } from './codes.js';
import type { KernelExports } from './kernel-api.js';
import { checkDims } from '../onnx/tensor.js';
import type { BiasMode, LayerQ, TensorQ } from '../device/spec.js';
import {
  attrNumber, attrNumbers, attrString, numel, type AttrValue, type DType, type Node, type Tensor, type TensorData,
} from '../graph/ir.js';

export interface ValueMeta {
  dtype: DType;
  shape: number[];
  /** Known constant value (initializer or folded). */
  value?: Tensor;
}

export interface OutputMeta {
  dtype: DType;
  shape: number[];
  /** Set when the output is known without running the op (e.g. Shape). */
  value?: Tensor;
}

export interface CompileContext {
  node: Node;
  opset: number;
  /** One entry per node input; undefined where an optional input is omitted. */
  inputs: (ValueMeta | undefined)[];
}

export interface Compiled<P> {
  params: P;
  outputs: OutputMeta[];
}

/** An element-wise activation in the form WASM kernels apply it (codes ACT of
 *  assembly/shared.json): Relu is CLAMP(0, +inf), Clip is CLAMP(lo, hi), SILU is
 *  x * Sigmoid(x) (a Sigmoid and a Mul fused by the float engine). */
export interface Activation { code: number; p0: number; p1: number }

export const NO_ACTIVATION: Activation = { code: ACT.NONE, p0: 0, p1: 0 };

/** What a float kernel binding gets to set itself up (pack weights, pick a kernel). */
export interface KernelEnv {
  /** The WASM module's exports (kernels take byte offsets into its memory). */
  readonly exports: KernelExports;
  /** Input metadata, constants included. */
  readonly inputs: (ValueMeta | undefined)[];
  /** Reserve `bytes` of WASM memory for the model's lifetime (16-byte aligned, zero-filled). */
  alloc(bytes: number): number;
  /** Float32 view of WASM memory; valid until the memory grows, so use it only while setting up. */
  f32(ptr: number, length: number): Float32Array;
  /** Int32 view of WASM memory, under the same condition. */
  i32(ptr: number, length: number): Int32Array;
  /** Scratch shared by every step, valid during a call; `ptr` is set once the plan is built
   *  (the float engine's; where absent, kernels reserve their own with `alloc`). */
  scratch?(bytes: number): { readonly ptr: number };
  /** An activation the kernel must apply to its output (the engine fuses it into the op only
   *  if the op's module offers `fusesActivation`). */
  readonly activation?: Activation;
}

/** What a data-moving kernel binding gets (Slice, Transpose, nearest Resize): the float engine's
 *  environment or the fixed-point engine's, and the size of the elements it moves. */
export type MoveEnv = Pick<KernelEnv, 'exports' | 'alloc' | 'f32' | 'i32'> & { readonly bytes: 1 | 2 | 4 };

/** The kernels with one version per element size in bytes, all of one signature. */
export const BY_WIDTH = {
  copy: { 1: 'copy_x8_strided', 2: 'copy_x16_strided', 4: 'copy_x32_strided' },
  scatter: { 1: 'scatter_phase_x8', 2: 'scatter_phase_x16', 4: 'scatter_phase_x32' },
  resize: { 1: 'resize_x8_nearest', 2: 'resize_x16_nearest', 4: 'resize_x32_nearest' },
} as const satisfies Record<string, Record<1 | 2 | 4, KernelName>>;

/** The name of a kernel: every function the WASM module exports. */
export type KernelName = { [K in keyof KernelExports]: KernelExports[K] extends (...args: never[]) => unknown ? K : never }[keyof KernelExports];

/** A WASM export by name, with the signature the compiler declared (kernel-api.ts). */
export function kernelFn<K extends KernelName>(env: { readonly exports: KernelExports }, name: K): KernelExports[K] {
  const f = env.exports[name];
  if (typeof f !== 'function') throw new Error(`kernel ${name} is missing from the WASM module`);
  return f;
}

/** The element-wise kernel of an activation over `n` floats. */
export function activationKernel(env: KernelEnv, a: Activation, n: number): KernelCall {
  const f = kernelFn(env, 'unary_f32_simd');
  return ([x], [y]) => f(x, y, n, a.code, a.p0, a.p1);
}

/** Write a parameter block (a list of i32 fields in assembly/shared.json, which the kernels read
 *  at the offsets generated from the same list) into freshly reserved WASM memory, when a kernel
 *  is bound (never per call): kernels with many sizes take its address instead. */
export function paramBlock<F extends string>(
  env: { readonly exports: KernelExports; alloc(bytes: number): number }, fields: readonly F[], values: Record<F, number>,
): number {
  const ptr = env.alloc(fields.length * 4);
  new Int32Array(env.exports.memory.buffer, ptr, fields.length).set(fields.map((k) => values[k]));
  return ptr;
}

/** The sizes of a conv or pool kernel call: the fields of the block GEOM. */
export type Geometry = Record<(typeof GEOM)[number], number>;

/** The GEOM block of a conv or pool kernel. */
export function geometryBlock(env: { readonly exports: KernelExports; alloc(bytes: number): number }, g: Geometry): number {
  return paramBlock(env, GEOM, g);
}

/** Copy `data` into freshly reserved WASM memory (packed weights, lookup tables): as int32
 *  when it is an Int32Array, as float32 otherwise. */
export function upload(env: Pick<KernelEnv, 'alloc' | 'f32' | 'i32'>, data: ArrayLike<number>): number {
  const ptr = env.alloc(data.length * 4);
  (data instanceof Int32Array ? env.i32(ptr, data.length) : env.f32(ptr, data.length)).set(data);
  return ptr;
}

/** A prepared kernel call: byte offsets of the runtime inputs (0 for constants folded into
 *  the kernel's own packed data) and of the outputs. */
export type KernelCall = (inputs: number[], outputs: number[]) => void;

export interface OpModule<P = unknown> {
  /** Op types this module handles; non-default domains as 'domain:Op'. */
  readonly ops: readonly string[];
  compile(ctx: CompileContext): Compiled<P>;
  /** Output i is input 0 reinterpreted with a new shape (no data movement). */
  readonly alias?: boolean;
  /** y[i] = f(x[i]) over one runtime input: a fixed-point float fallback can then be tabulated
   *  exactly over the input's integer range. */
  readonly elementwise?: boolean;
  /** The interval every output value lies in whatever the input (Sigmoid [0, 1], Tanh [-1, 1]):
   *  calibration clips there where statistics would cut it. */
  outputRange?(params: P): [number, number] | undefined;
  /** Never constant-fold (e.g. ops whose result must stay visible to calibration). */
  readonly noFold?: boolean;
  reference(params: P, inputs: TensorData[], outputs: TensorData[]): void;
  /** Binding to a WASM float kernel; undefined means the engine runs `reference`. */
  kernel?(params: P, env: KernelEnv): KernelCall | undefined;
  /** The op as an activation the engine may fuse into its producer's kernel (applied on store). */
  activation?(params: P): Activation | undefined;
  /** The op as an activation the device fuses (Relu, Clip): the clip it applies. The only reader
   *  of its producer's output, it fuses into the producer (fusedActivation in index.ts): the
   *  device applies it as the layer's saturation, and calibration places its point after it. */
  clip?(params: P): Clip | undefined;
  /** Its kernels can apply `KernelEnv.activation` to their output. */
  readonly fusesActivation?: boolean;
  /** Its outputs hold only values of its first input (Reshape, Transpose, Slice, ...), so they
   *  take the input's format; a function where that depends on the node (nearest Resize). */
  readonly movesData?: true | ((node: Node) => boolean);
  /** A weight layer's op (Conv, ConvTranspose, Gemm, MatMul): where its output channels are. */
  weights?: WeightFacts<P>;
  /** Besides the weight layers, TIDL can change precision (8 to 16 bits or back) at the node:
   *  its layer requantizes into a format of its own (eltwise Add/Sub/Mul, average pooling,
   *  BatchNorm); a function where that depends on the node's op type. */
  readonly changesPrecision?: true | ((node: Node) => boolean);
  /** The device's integer arithmetic; ops without it run as float fallback in fixed point. */
  fixed?: FixedOp<P, any>;
}

/** The clip of an activation: y = min(max, max(min, x)). */
export interface Clip { min: number; max: number }

/** Output-channel layout of a weight tensor: how many channels and a flat index's channel. */
export interface WeightLayout {
  channels: number;
  channelOf: (i: number) => number;
}

export interface WeightFacts<P> {
  /** How the constant weights (input 1) map to output channels. */
  layout(params: P, w: Tensor): WeightLayout;
  /** The axis of an output of rank `rank` that holds the output channels. */
  channelAxis(rank: number): number;
  /** Whether the node is one MMA layer on the device; without it, constant weights suffice. */
  isLayer?(params: P, inputs: readonly (ValueMeta | undefined)[]): boolean;
}

// ---- the fixed-point part (DESIGN.md §5; the rules themselves live in device/spec.ts) ----

/** What the fixed-point engine tells an op about one node. */
export interface FixedContext<P> {
  node: Node;
  params: P;
  inputs: (ValueMeta | undefined)[];
  /** Formats of the runtime inputs; undefined for constants and omitted inputs. */
  inQ: (TensorQ | undefined)[];
  /** Formats of the outputs (with a fused activation, the activation's output format). */
  outQ: TensorQ[];
  /** Per output: the saturation range, the format's range (narrowed by the Relu/Clip of the
   *  step where the spec keeps clip bounds). */
  bounds: [number, number][];
  /** Weight layers: quantized weights and float bias. */
  layer?: LayerQ;
  biasMode: BiasMode;
}

/** The integer arithmetic of a weight layer, shared by its reference and kernel. */
export interface LayerArith {
  bits: 8 | 16;
  channels: number;
  /** Device bias per output channel at the accumulator scale 2^accLog2[c]; setBias rewrites it. */
  bias: Int32Array;
  /** Requantizing shift per output channel (n = in + w - out >= 0). */
  shift: Int32Array;
  accLog2: Int32Array;
  /** Per output channel: max |sum x*w| over all inputs (the accumulator bound before bias). */
  macBound: Float64Array;
  lo: number;
  hi: number;
  /** When set, the step adds per-channel sums of its accumulators (bias added, before the shift). */
  accSums?: Float64Array;
  /** Re-derive the device bias from a float bias (checks the accumulator bound again). */
  setBias(bias: ArrayLike<number>): void;
}

/** A fixed-point kernel binding gets this to pack its constants and reserve scratch memory. */
export interface FixedKernelEnv {
  readonly exports: KernelExports;
  /** Reserve memory for the plan's lifetime (16-byte aligned, zero-filled). */
  alloc(bytes: number): number;
  /** Scratch shared by every step, valid during a call; `ptr` is set once the plan is built. */
  scratch(bytes: number): { readonly ptr: number };
  /** The WASM memory's current buffer (views made on it die when the memory grows). */
  buffer(): ArrayBuffer;
}

/** What an op needs to say which output formats its integer arithmetic takes. */
export type LimitContext<P> = Pick<FixedContext<P>, 'node' | 'params' | 'inputs' | 'inQ' | 'outQ'>;

/**
 * The output scale exponents an op's integer arithmetic takes for given input formats:
 * coarsest <= out.scaleLog2 <= finest (either side open when absent). Calibration moves an
 * output scale that the statistics put outside into this interval; compile() refuses it.
 */
export interface ScaleLimits {
  finest?: number;
  coarsest?: number;
  /** Why the finest scale is where it is (recorded with the compromise when calibration lowers a scale). */
  finestReason?: string;
  coarsestReason?: string;
}

export interface FixedOp<P, F> {
  /**
   * The output scales this node's arithmetic takes, for its input formats and the output's bits
   * and signedness; undefined when the node runs as float fallback (compile() returns undefined
   * exactly then). Weight layers leave it out: calibration chooses their weight scales as well.
   */
  limits?(ctx: LimitContext<P>): ScaleLimits | undefined;
  /** Derive the integer parameters (shifts, factors, device biases) and validate the formats;
   *  undefined when this case has no documented device arithmetic (the node runs as float
   *  fallback). */
  compile(ctx: FixedContext<P>): F | undefined;
  /** The spec in code: integer inputs (constants as their float data) to integer outputs. */
  reference(f: F, inputs: TensorData[], outputs: TensorData[]): void;
  /** Binding to WASM integer kernels; undefined falls back to `reference`. */
  kernel?(f: F, env: FixedKernelEnv): KernelCall | undefined;
  /** The step saturates with `bounds`, so a following single-use Relu/Clip fuses into it. */
  readonly fusesActivation?: boolean;
  /** Weight layers: where compile() put the layer's arithmetic (for setBias and statistics). */
  arith?(f: F): LayerArith | undefined;
  /** The integers compile() derived (factors, multipliers, shifts, device biases, saturation), as
   *  plain numbers: what recomputing the step from its input integers needs besides the formats
   *  (calibration.json's "integers" section). */
  describe?(f: F): StepIntegers;
}

/** A step's integer parameters, JSON-ready. */
export type StepIntegers = Record<string, number | number[] | { factor: number; shift: number }[]>;

// ---- helpers shared by op modules ----

export function opError(node: Node, message: string): never {
  fail('BAD_MODEL', `node "${node.name}" (${node.op}): ${message}`);
}

/** Refuse an output shape beyond the tensor limits before an op sizes any table by it. */
export function checkOutputShape(ctx: CompileContext, shape: number[]): number[] {
  checkDims(shape, `node "${ctx.node.name}" (${ctx.node.op}) output`);
  return shape;
}

export function input(ctx: CompileContext, i: number): ValueMeta {
  const v = ctx.inputs[i];
  if (!v) opError(ctx.node, `input ${i} is required`);
  return v;
}

/** A constant input's values as numbers, or undefined if the input is omitted or empty. */
export function constInput(ctx: CompileContext, i: number, what: string): number[] | undefined {
  const v = ctx.inputs[i];
  if (!v) return undefined;
  if (!v.value) fail('UNSUPPORTED', `node "${ctx.node.name}" (${ctx.node.op}): ${what} must be constant (it is computed at run time)`);
  if (v.value.data.length === 0) return undefined;
  return Array.from(v.value.data);
}

/** An attribute present with a type the op cannot read (a string where a number belongs, a
 *  graph for a list) is an error rather than silently the default. */
function typed(ctx: CompileContext, name: string, kinds: readonly AttrValue['type'][]): void {
  const a = ctx.node.attrs[name];
  if (a && !kinds.includes(a.type)) opError(ctx.node, `attribute "${name}" must be ${kinds.join(' or ')}, got ${a.type}`);
}
const NUMBER = ['int', 'float'] as const;

export const attr = {
  int(ctx: CompileContext, name: string, fallback: number): number {
    typed(ctx, name, NUMBER);
    const v = attrNumber(ctx.node, name, fallback);
    if (!Number.isInteger(v)) opError(ctx.node, `attribute "${name}" must be an integer, got ${v}`);
    return v;
  },
  float(ctx: CompileContext, name: string, fallback: number): number {
    typed(ctx, name, NUMBER);
    return attrNumber(ctx.node, name, fallback);
  },
  ints(ctx: CompileContext, name: string): number[] | undefined {
    typed(ctx, name, [...NUMBER, 'ints', 'floats']);
    return attrNumbers(ctx.node, name);
  },
  string(ctx: CompileContext, name: string, fallback: string): string {
    typed(ctx, name, ['string']);
    return attrString(ctx.node, name, fallback);
  },
};

/** Normalize a possibly negative axis against `rank`. */
export function axis(ctx: CompileContext, a: number, rank: number): number {
  const r = a < 0 ? a + rank : a;
  if (!(r >= 0 && r < rank)) opError(ctx.node, `axis ${a} is out of range for rank ${rank}`);
  return r;
}

export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function checkRank(ctx: CompileContext, v: ValueMeta, rank: number, what = 'input'): void {
  if (v.shape.length !== rank) opError(ctx.node, `${what} must have rank ${rank}, got [${v.shape.join(',')}]`);
}

export { ACT, numel };

/** Shared test helpers: where the reference assets are, a seeded RNG, ONNX Runtime, and a small
 *  model builder on the project's own IR and writer. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import type { Test } from 'uvu';
import { numel, tensor, type AttrValue, type DType, type Graph, type Node, type Tensor } from '../sdk/graph/ir.js';
import { encodeModel } from '../sdk/onnx/encode.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The reference assets: ../shared/assets beside the checkout, or $P2CALIB_ASSETS (CI points it at a
 *  missing folder to run the suite as a user's fresh machine does). */
export const ASSETS = resolve(ROOT, process.env.P2CALIB_ASSETS ?? '../shared/assets');
export const HAVE_ASSETS = existsSync(join(ASSETS, 'models'));
export const MODELS = join(ASSETS, 'models');

let warned = false;
/** Register a test that needs ../shared/assets; without them it is skipped with a message. */
export function assetTest(suite: Test, name: string, fn: () => void | Promise<void>): void {
  if (HAVE_ASSETS) return suite(name, fn);
  if (!warned) {
    console.log(`\n  (skipping tests that need ${ASSETS}: not found)`);
    warned = true;
  }
  suite.skip(name, fn);
}

export function readModel(file: string): Uint8Array {
  return readFileSync(join(MODELS, file));
}

/** The shared models and the input shape each needs. */
export const SHARED_MODELS: { file: string; shape: number[] }[] = [
  { file: 'mobilenetv2-12-fp32.onnx', shape: [1, 3, 224, 224] },
  { file: 'mobilenetv2-12-int8.onnx', shape: [1, 3, 224, 224] },
  { file: 'yolox-nano.onnx', shape: [1, 3, 416, 416] },
  { file: 'deeplabv3-mobilenetv2-257-nhwc.onnx', shape: [1, 257, 257, 3] },
  { file: 'ultraface-rfb-320.onnx', shape: [1, 3, 240, 320] },
];

/** Deterministic uniform numbers in [lo, hi). */
export function rng(seed: number): (lo?: number, hi?: number) => number {
  let s = seed >>> 0;
  return (lo = 0, hi = 1) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  };
}

export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r(lo, hi));
}

export function randomTensor(dims: number[], seed: number, lo = -1, hi = 1): Tensor {
  return { dtype: 'float32', dims, data: randomArray(numel(dims), seed, lo, hi) };
}

/** Max |a - b| and max |b|. */
export function diff(a: ArrayLike<number>, b: ArrayLike<number>): { max: number; ref: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let max = 0, ref = 0;
  for (let i = 0; i < a.length; i++) {
    max = Math.max(max, Math.abs(a[i] - b[i]));
    ref = Math.max(ref, Math.abs(b[i]));
  }
  return { max, ref };
}

export async function ortRun(model: Uint8Array, feeds: Record<string, { data: Float32Array; dims: number[] }>): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(model, { logSeverityLevel: 3, graphOptimizationLevel: 'disabled' });
  const inputs: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) inputs[k] = new ort.Tensor('float32', v.data, v.dims);
  const res = await session.run(inputs);
  const out: Record<string, Float32Array> = {};
  for (const k of session.outputNames) out[k] = Float32Array.from(res[k].data as ArrayLike<number>);
  await session.release();
  return out;
}

// ---- building small models ----

type AttrInput = number | string | number[] | Tensor | { floats: number[] } | { float: number };

function toAttr(v: AttrInput): AttrValue {
  if (typeof v === 'string') return { type: 'string', value: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { type: 'int', value: v } : { type: 'float', value: v };
  if (Array.isArray(v)) return { type: 'ints', value: v };
  if ('floats' in v) return { type: 'floats', value: v.floats };
  if ('float' in v) return { type: 'float', value: v.float };
  return { type: 'tensor', value: v };
}

export function node(op: string, inputs: string[], outputs: string[], attrs: Record<string, AttrInput> = {}, domain = ''): Node {
  return {
    name: `${op}_${outputs[0]}`, op, domain, inputs, outputs,
    attrs: Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, toAttr(v)])),
  };
}

export interface ModelSpec {
  inputs: { name: string; dims: (number | string)[]; dtype?: DType }[];
  outputs: { name: string; dims?: (number | string)[]; dtype?: DType }[];
  nodes: Node[];
  initializers?: Record<string, Tensor>;
  opset?: number;
}

export function buildGraph(spec: ModelSpec): Graph {
  return {
    name: 'test',
    nodes: spec.nodes,
    inputs: spec.inputs.map((i) => ({ name: i.name, dtype: i.dtype ?? 'float32', dims: i.dims })),
    outputs: spec.outputs.map((o) => ({ name: o.name, dtype: o.dtype ?? 'float32', dims: o.dims ?? [] })),
    initializers: new Map(Object.entries(spec.initializers ?? {})),
    opset: spec.opset ?? 13,
    extraOpsets: [],
    irVersion: 7,
    producer: 'p2calib-test',
  };
}

export function buildModel(spec: ModelSpec): Uint8Array {
  return encodeModel(buildGraph(spec));
}

export const ints = (dims: number[], values: number[]): Tensor => tensor('int64', dims, values);
export const floats = (dims: number[], values: number[]): Tensor => tensor('float32', dims, values);

/** A small CNN with the structures calibration must handle: conv+relu, depthwise conv, a residual
 *  Add, Concat, pooling, a Gemm head, a Sigmoid (float fallback) and a Clip(0,6). */
export function smallCnn(opset = 13) {
  return buildModel({
    opset,
    inputs: [{ name: 'x', dims: [1, 3, 12, 12] }],
    outputs: [{ name: 'y', dims: [1, 5] }, { name: 'gate', dims: [1, 8, 6, 6] }],
    nodes: [
      node('Conv', ['x', 'w1', 'b1'], ['c1'], { pads: [1, 1, 1, 1], strides: [2, 2] }),
      node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'wd', 'bd'], ['c2'], { pads: [1, 1, 1, 1], group: 8 }),
      node('Clip', ['c2', 'zero', 'six'], ['r2']),
      node('Conv', ['r2', 'w3', 'b3'], ['c3']),
      node('Add', ['c3', 'r1'], ['sum']),
      node('Sigmoid', ['sum'], ['gate']),
      node('Concat', ['sum', 'r2'], ['cat'], { axis: 1 }),
      node('MaxPool', ['cat'], ['mp'], { kernel_shape: [2, 2], strides: [2, 2] }),
      node('GlobalAveragePool', ['mp'], ['gap']),
      node('Flatten', ['gap'], ['flat']),
      node('Gemm', ['flat', 'fw', 'fb'], ['y'], { transB: 1 }),
    ],
    initializers: {
      w1: randomTensor([8, 3, 3, 3], 1, -0.5, 0.5), b1: randomTensor([8], 2, -0.2, 0.2),
      wd: randomTensor([8, 1, 3, 3], 3, -1, 1), bd: randomTensor([8], 4, -0.2, 0.2),
      w3: randomTensor([8, 8, 1, 1], 5, -0.5, 0.5), b3: randomTensor([8], 6, -0.1, 0.1),
      fw: randomTensor([5, 16], 7, -1, 1), fb: randomTensor([5], 8, -0.1, 0.1),
      zero: floats([], [0]), six: floats([], [6]),
    },
  });
}

/** A random ConvTranspose: any stride, dilation, group, pads (also past the kernel's reach, which
 *  crop the output) and output_padding. */
export function randomConvTranspose(r: ReturnType<typeof rng>, seed: number): ModelSpec {
  const int = (lo: number, hi: number) => Math.floor(r(lo, hi + 1));
  for (;;) {
    const group = int(1, 3), c = group * int(1, 5), m = group * int(1, 6);
    const k = [int(1, 5), int(1, 5)], s = [int(1, 3), int(1, 3)], d = [int(1, 2), int(1, 2)];
    const pads = [0, 0, 0, 0].map(() => (r() < 0.15 ? int(3, 6) : int(0, 2)));
    const outPad = [0, 1].map((a) => int(0, Math.max(s[a], d[a]) - 1));
    const n = int(1, 2), h = int(1, 13), w = int(1, 13);
    const oh = s[0] * (h - 1) + outPad[0] + (k[0] - 1) * d[0] + 1 - pads[0] - pads[2];
    const ow = s[1] * (w - 1) + outPad[1] + (k[1] - 1) * d[1] + 1 - pads[1] - pads[3];
    if (oh <= 0 || ow <= 0) continue;
    const bias = r() < 0.7;
    const init: Record<string, Tensor> = { w: randomTensor([c, m / group, ...k], seed, -1, 1) };
    if (bias) init.b = randomTensor([m], seed + 1);
    return {
      inputs: [{ name: 'x', dims: [n, c, h, w] }], outputs: [{ name: 'y' }], initializers: init,
      nodes: [node('ConvTranspose', ['x', 'w', ...(bias ? ['b'] : [])], ['y'], {
        kernel_shape: k, strides: s, dilations: d, pads, output_padding: outPad, group,
      })],
    };
  }
}

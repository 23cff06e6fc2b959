/**
 * The fuzzers shared by test/fuzz.test.ts (a few seconds in the suite) and scripts/fuzz.mjs (long
 * runs): seeded mutations of ONNX models, byte-level and structure-aware, thrown at the ONNX
 * reader, loadModel, inspectModel and a float run (only P2Errors may come out: anything else is a
 * bug in the reader, the IR or an op module); and mutated trace folders thrown at the trace
 * comparison (which reports problems and never throws). Findings name the seed and iteration
 * that repeat them.
 */
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calibrate } from '../sdk/calibration.js';
import { P2Error, type ErrorCode } from '../sdk/errors.js';
import { tableHash, tableJson } from '../sdk/export/table.js';
import { MAX_TABLE_BYTES, readCalibration } from '../sdk/node/calibration-files.js';
import { MAX_TRACE_BYTES, readTraceDir } from '../sdk/node/traces.js';
import type { CalibrateOptions } from '../sdk/quant/calibrate.js';
import { inspectModel } from '../sdk/inspect.js';
import { loadModel, type Model } from '../sdk/model.js';
import { decodeModel } from '../sdk/onnx/decode.js';
import { ModelProto } from '../sdk/onnx/schema.js';
import type { QType } from '../sdk/device/spec.js';
import { compareTraces } from '../sdk/trace/compare.js';
import { LAYER_INFO, traceFiles, type TraceLayer } from '../sdk/trace/format.js';
import { buildModel, floats, ints, node, randomTensor, rng, type ModelSpec } from './helpers.js';

export type Rng = ReturnType<typeof rng>;

const CODES: readonly ErrorCode[] = [
  'NOT_ONNX', 'TRUNCATED', 'BAD_MODEL', 'EXTERNAL_DATA', 'UNSUPPORTED', 'SHAPE', 'TOO_LARGE', 'BAD_INPUT', 'BAD_OPTION', 'BAD_IMAGE', 'BAD_TRACE', 'IO',
];

/** A model to mutate and the input shape it is loaded with. */
export interface Seed {
  name: string;
  bytes: Uint8Array;
  shape?: number[];
}

const int = (r: Rng, lo: number, hi: number) => Math.floor(r(lo, hi + 1));
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[int(r, 0, xs.length - 1)];

/** Small models covering the op modules (their attributes and constant inputs are what the
 *  structural mutations rewrite). */
export function generatedSeeds(): Seed[] {
  const specs: Record<string, ModelSpec> = {
    cnn: {
      inputs: [{ name: 'x', dims: ['n', 3, 8, 8] }],
      outputs: [{ name: 'y', dims: ['n', 4] }],
      nodes: [
        node('Conv', ['x', 'w1', 'b1'], ['c1'], { pads: [1, 1, 1, 1], strides: [1, 1] }),
        node('BatchNormalization', ['c1', 'g', 'bb', 'm', 'v'], ['bn']),
        node('Relu', ['bn'], ['r1']),
        node('MaxPool', ['r1'], ['p1'], { kernel_shape: [2, 2], strides: [2, 2] }),
        node('Conv', ['p1', 'wd'], ['c2'], { group: 6, kernel_shape: [3, 3], pads: [1, 1, 1, 1], dilations: [1, 1] }),
        node('Clip', ['c2', 'lo', 'hi'], ['r2']),
        node('AveragePool', ['r2'], ['p2'], { kernel_shape: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], count_include_pad: 0 }),
        node('GlobalAveragePool', ['p2'], ['gp']),
        node('Flatten', ['gp'], ['f'], { axis: 1 }),
        node('Gemm', ['f', 'fw', 'fb'], ['gm'], { transB: 1 }),
        node('Softmax', ['gm'], ['y'], { axis: -1 }),
      ],
      initializers: {
        w1: randomTensor([6, 3, 3, 3], 1), b1: randomTensor([6], 2), g: randomTensor([6], 3, 0.5, 2), bb: randomTensor([6], 4),
        m: randomTensor([6], 5), v: randomTensor([6], 6, 0.1, 1), wd: randomTensor([6, 1, 3, 3], 7),
        lo: floats([], [0]), hi: floats([], [6]), fw: randomTensor([4, 6], 8), fb: randomTensor([4], 9),
      },
    },
    shapes: {
      inputs: [{ name: 'x', dims: [1, 4, 6, 6] }],
      outputs: [{ name: 'y' }, { name: 's1' }],
      nodes: [
        node('Shape', ['x'], ['sh']),
        node('Gather', ['sh', 'zero'], ['n0'], { axis: 0 }),
        node('Unsqueeze', ['n0', 'ax0'], ['n1']),
        node('Concat', ['n1', 'm1'], ['target'], { axis: 0 }),
        node('Transpose', ['x'], ['t'], { perm: [0, 2, 3, 1] }),
        node('Slice', ['t', 'st', 'en', 'axs', 'stp'], ['sl']),
        node('Pad', ['sl', 'pads'], ['pd'], { mode: 'constant' }),
        node('Resize', ['pd', '', 'scales'], ['rs'], { mode: 'nearest' }),
        node('Split', ['rs', 'split'], ['s1', 's2'], { axis: 3 }),
        node('Reshape', ['s2', 'target'], ['rp']),
        node('ReduceMean', ['rp'], ['rm'], { axes: [1], keepdims: 1 }),
        node('Squeeze', ['rm', 'ax1'], ['y']),
      ],
      initializers: {
        zero: ints([], [0]), ax0: ints([1], [0]), m1: ints([1], [-1]), ax1: ints([1], [1]),
        st: ints([2], [1, 0]), en: ints([2], [5, 4]), axs: ints([2], [1, 3]), stp: ints([2], [1, 1]),
        pads: ints([8], [0, 1, 1, 0, 0, 1, 1, 0]), scales: floats([4], [1, 2, 2, 1]), split: ints([2], [1, 3]),
      },
    },
    eltwise: {
      inputs: [{ name: 'a', dims: [1, 4, 5] }, { name: 'b', dims: [1, 1, 5] }],
      outputs: [{ name: 'y' }, { name: 'z' }],
      nodes: [
        node('Add', ['a', 'b'], ['s']),
        node('Mul', ['s', 'three'], ['m']),
        node('Sub', ['m', 'a'], ['d']),
        node('Div', ['d', 'three'], ['q']),
        node('Sigmoid', ['q'], ['sg']),
        node('Greater', ['sg', 'half'], ['gt']),
        node('Where', ['gt', 'sg', 'q'], ['w']),
        node('MatMul', ['w', 'mm'], ['mt']),
        node('Tanh', ['mt'], ['th']),
        node('LeakyRelu', ['th'], ['y'], { alpha: 0.1 }),
        node('HardSigmoid', ['q'], ['hs']),
        node('Concat', ['hs', 'b'], ['z'], { axis: 1 }),
      ],
      initializers: { three: floats([], [3]), half: floats([1], [0.5]), mm: randomTensor([5, 3], 10) },
    },
    constants: {
      inputs: [{ name: 'x', dims: [1, 2, 4, 4] }],
      outputs: [{ name: 'y' }, { name: 'e' }],
      nodes: [
        node('ConvTranspose', ['x', 'wt', 'bt'], ['ct'], { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] }),
        node('Range', ['r0', 'r1', 'r2'], ['rg']),
        node('Cast', ['rg'], ['rf'], { to: 1 }),
        node('ConstantOfShape', ['cs'], ['co'], { value: floats([1], [0.5]) }),
        node('Constant', [], ['k'], { value: floats([1], [2]) }),
        node('Mul', ['co', 'k'], ['ck']),
        node('Add', ['ct', 'ck'], ['ak']),
        node('Expand', ['rf', 'es'], ['e']),
        node('GlobalMaxPool', ['ak'], ['y']),
      ],
      initializers: {
        wt: randomTensor([2, 3, 3, 3], 11), bt: randomTensor([3], 12), r0: ints([], [0]), r1: ints([], [8]), r2: ints([], [2]),
        cs: ints([4], [1, 3, 8, 8]), es: ints([2], [3, 4]),
      },
    },
    qdq: {
      inputs: [{ name: 'x', dims: [1, 2, 5, 5] }],
      outputs: [{ name: 'y' }],
      nodes: [
        node('QuantizeLinear', ['x', 'xs', 'xz'], ['xq']),
        node('DequantizeLinear', ['xq', 'xs', 'xz'], ['xd']),
        node('QuantizeLinear', ['xd', 'xs', 'xz'], ['xq2']),
        node('QLinearConv', ['xq2', 'xs', 'xz', 'wq', 'ws', 'wz', 'ys', 'yz', 'bq'], ['yq'], { pads: [1, 1, 1, 1] }),
        node('DequantizeLinear', ['yq', 'ys', 'yz'], ['y']),
      ],
      initializers: {
        xs: floats([], [0.05]), xz: { dtype: 'uint8', dims: [], data: Uint8Array.of(128) },
        wq: { dtype: 'int8', dims: [3, 2, 3, 3], data: Int8Array.from({ length: 54 }, (_, i) => (i * 37) % 255 - 127) },
        ws: floats([3], [0.01, 0.02, 0.03]), wz: { dtype: 'int8', dims: [3], data: new Int8Array(3) },
        ys: floats([], [0.1]), yz: { dtype: 'uint8', dims: [], data: Uint8Array.of(100) },
        bq: { dtype: 'int32', dims: [3], data: Int32Array.of(10, -20, 30) },
      },
    },
    opset9: {
      inputs: [{ name: 'x', dims: [1, 2, 3, 3] }],
      outputs: [{ name: 'y' }],
      opset: 9,
      nodes: [
        node('Clip', ['x'], ['c'], { min: { float: 0 }, max: { float: 6 } }),
        node('Upsample', ['c', 'us'], ['u'], { mode: 'nearest' }),
        node('Pad', ['u'], ['p'], { pads: [0, 0, 1, 1, 0, 0, 1, 1], value: { float: 0 } }),
        node('Unsqueeze', ['p'], ['q'], { axes: [0] }),
        node('Squeeze', ['q'], ['s'], { axes: [0] }),
        node('ReduceSum', ['s'], ['y'], { axes: [2, 3], keepdims: 0 }),
      ],
      initializers: { us: floats([4], [1, 1, 2, 2]) },
    },
  };
  return Object.entries(specs).map(([name, spec]) => ({
    name,
    bytes: buildModel(spec),
    shape: spec.inputs.length === 1 && spec.inputs[0].dims.some((d) => typeof d === 'string') ? [2, 3, 8, 8] : undefined,
  }));
}

// ---- mutations ----

const INTERESTING = [0, -1, -2, 1, 2, 3, 7, 255, 65536, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 1e9, -1e9, 2 ** 40, 2 ** 53, 1e15];
const FLOATS = [0, -0, 1, -1, 0.5, NaN, Infinity, -Infinity, 1e38, -1e38, 1e-45, 3.4e38];
const OPS = [
  'Conv', 'Relu', 'Clip', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Gemm', 'MatMul', 'Add', 'Mul', 'Sub', 'Div', 'Concat', 'Reshape',
  'Flatten', 'Transpose', 'Slice', 'Pad', 'Resize', 'Upsample', 'Softmax', 'Sigmoid', 'ConvTranspose', 'BatchNormalization', 'Split',
  'Squeeze', 'Unsqueeze', 'Gather', 'Shape', 'ReduceMean', 'ReduceSum', 'Cast', 'Expand', 'ConstantOfShape', 'Range', 'Where', 'Constant',
  'QuantizeLinear', 'DequantizeLinear', 'QLinearConv', 'QLinearMatMul', 'QLinearAdd', 'Identity', 'Dropout', 'HardSwish', 'LeakyRelu',
  'Equal', 'Pow', 'Sqrt', 'Exp', 'Frobnicate',
];
const ATTR_NAMES = [
  'axis', 'axes', 'pads', 'strides', 'kernel_shape', 'group', 'dilations', 'perm', 'split', 'to', 'mode', 'keepdims', 'transA', 'transB',
  'alpha', 'beta', 'epsilon', 'min', 'max', 'value', 'starts', 'ends', 'allowzero', 'auto_pad', 'ceil_mode', 'count_include_pad',
  'coordinate_transformation_mode', 'output_padding', 'output_shape', 'scales', 'nearest_mode', 'start', 'end', 'blocksize',
];

/** A mutable object view of a ModelProto (the ONNX field names). */
type Obj = Record<string, any>;

function randomInt(r: Rng): number {
  return r() < 0.6 ? pick(r, INTERESTING) * (r() < 0.2 ? -1 : 1) : int(r, -4, 16);
}

function randomInts(r: Rng): number[] {
  return Array.from({ length: int(r, 0, 8) }, () => randomInt(r));
}

function randomTensorProto(r: Rng): Obj {
  const dims = Array.from({ length: int(r, 0, 4) }, () => (r() < 0.8 ? int(r, 0, 4) : randomInt(r)));
  const t: Obj = { dims, data_type: r() < 0.8 ? pick(r, [1, 7, 6, 2, 3, 10, 9]) : int(r, -1, 30) };
  const n = Math.max(0, Math.min(64, dims.reduce((a, b) => a * Math.abs(b), 1)));
  if (r() < 0.5) t.raw_data = Uint8Array.from({ length: int(r, 0, 2) ? n * 4 : int(r, 0, 40) }, () => int(r, 0, 255));
  else if (t.data_type === 7) t.int64_data = Array.from({ length: n }, () => randomInt(r));
  else t.float_data = Array.from({ length: r() < 0.9 ? n : int(r, 0, 9) }, () => pick(r, FLOATS));
  return t;
}

function randomAttr(r: Rng, name: string): Obj {
  const type = int(r, 0, 11);
  const a: Obj = { name, type: r() < 0.15 ? int(r, 0, 30) : type };
  switch (r() < 0.2 ? int(r, 1, 8) : type) {
    case 1: a.f = pick(r, FLOATS); break;
    case 2: a.i = randomInt(r); break;
    case 3: a.s = new TextEncoder().encode(pick(r, ['constant', 'reflect', 'edge', 'linear', 'nearest', 'SAME_UPPER', 'VALID', 'cubic', '', 'x'])); break;
    case 4: a.t = randomTensorProto(r); break;
    case 6: a.floats = Array.from({ length: int(r, 0, 6) }, () => pick(r, FLOATS)); break;
    case 7: a.ints = randomInts(r); break;
    case 8: a.strings = [new TextEncoder().encode('a')]; break;
    default: a.i = randomInt(r); a.ints = randomInts(r); break;
  }
  return a;
}

function tensorNames(g: Obj): string[] {
  const names = new Set<string>();
  for (const v of g.input ?? []) names.add(v.name);
  for (const t of g.initializer ?? []) names.add(t.name);
  for (const n of g.node ?? []) for (const o of n.output ?? []) names.add(o);
  return [...names, '', 'ghost'];
}

/** One structural mutation of the model object, in place; returns what it did. */
function mutateStructure(m: Obj, r: Rng): string {
  const g: Obj = (m.graph ??= {});
  const nodes: Obj[] = (g.node ??= []);
  const inits: Obj[] = (g.initializer ??= []);
  const n = nodes.length ? pick(r, nodes) : undefined;
  const kind = int(r, 0, 23);
  switch (kind) {
    case 20: case 21: {
      // An attribute keeps its type and gets an odd value: what op modules validate.
      const a: Obj | undefined = n?.attribute?.length ? pick(r, n.attribute as Obj[]) : undefined;
      if (!a) return 'attr value';
      if (a.ints?.length) a.ints[int(r, 0, a.ints.length - 1)] = randomInt(r);
      else if (a.floats?.length) a.floats[int(r, 0, a.floats.length - 1)] = pick(r, FLOATS);
      else if (a.type === 1) a.f = pick(r, FLOATS);
      else if (a.type === 2) a.i = randomInt(r);
      else if (a.ints) a.ints = randomInts(r);
      return `value of attribute ${a.name}`;
    }
    case 22: case 23: {
      // A small constant (shape, axes, pads, scales) gets an odd element.
      const small = inits.filter((t) => (t.dims ?? []).reduce((a: number, b: number) => a * b, 1) <= 16);
      if (!small.length) return 'constant value';
      const t = pick(r, small);
      if (t.raw_data?.length) {
        const raw = Uint8Array.from(t.raw_data);
        const view = new DataView(raw.buffer);
        const width = t.data_type === 7 ? 8 : 4;
        const count = Math.floor(raw.length / width);
        if (!count) return 'constant value';
        const at = width * int(r, 0, count - 1);
        if (t.data_type === 7) view.setBigInt64(at, BigInt(Math.trunc(randomInt(r))), true);
        else if (t.data_type === 1) view.setFloat32(at, r() < 0.5 ? pick(r, FLOATS) : randomInt(r), true);
        t.raw_data = raw;
      } else if (t.int64_data?.length) {
        t.int64_data = [...t.int64_data];
        t.int64_data[int(r, 0, t.int64_data.length - 1)] = randomInt(r);
      } else if (t.float_data?.length) {
        t.float_data = [...t.float_data];
        t.float_data[int(r, 0, t.float_data.length - 1)] = r() < 0.5 ? pick(r, FLOATS) : randomInt(r);
      }
      return `value of ${t.name}`;
    }
    case 0: if (n) n.op_type = pick(r, OPS); return 'op_type';
    case 1: if (n) { n.input ??= []; n.input[int(r, 0, n.input.length)] = pick(r, tensorNames(g)); } return 'node input';
    case 2: if (n?.input?.length) n.input.splice(int(r, 0, n.input.length - 1), 1); return 'drop input';
    case 3: if (n) n.output = r() < 0.3 ? [] : [pick(r, tensorNames(g)), ...(r() < 0.3 ? [pick(r, tensorNames(g))] : [])]; return 'node outputs';
    case 4: if (n) n.domain = pick(r, ['', 'ai.onnx', 'com.microsoft', 'ai.onnx.ml', 'x']); return 'domain';
    case 5: {
      if (!n) return 'attr';
      n.attribute ??= [];
      const name = n.attribute.length && r() < 0.6 ? pick(r, n.attribute as Obj[]).name : pick(r, ATTR_NAMES);
      n.attribute = n.attribute.filter((a: Obj) => a.name !== name);
      n.attribute.push(randomAttr(r, name));
      return `attribute ${name}`;
    }
    case 6: if (n?.attribute?.length) n.attribute.splice(int(r, 0, n.attribute.length - 1), 1); return 'drop attribute';
    case 7: if (n?.attribute?.length) pick(r, n.attribute as Obj[]).type = int(r, 0, 12); return 'attribute type';
    case 8: {
      if (!inits.length) return 'initializer';
      const t = pick(r, inits);
      const what = int(r, 0, 5);
      if (what === 0) t.dims = (t.dims ?? []).map((d: number) => (r() < 0.5 ? randomInt(r) : d));
      else if (what === 1) t.data_type = int(r, -1, 30);
      else if (what === 2 && t.raw_data) t.raw_data = t.raw_data.subarray(0, int(r, 0, t.raw_data.length));
      else if (what === 3) t.dims = [...(t.dims ?? []), pick(r, [1, 2, 0, 1e9])];
      else if (what === 4) t.name = pick(r, tensorNames(g));
      else { t.data_location = 1; t.external_data = [{ key: 'location', value: pick(r, ['w.bin', '../../etc/passwd', '']) }]; }
      return 'initializer field';
    }
    case 9: if (inits.length) inits.splice(int(r, 0, inits.length - 1), 1); return 'drop initializer';
    case 10: {
      const v = pick(r, (g.input ?? []) as Obj[]);
      const dims: Obj[] | undefined = v?.type?.tensor_type?.shape?.dim;
      if (!dims) return 'input dims';
      if (dims.length && r() < 0.7) dims[int(r, 0, dims.length - 1)] = r() < 0.8 ? { dim_value: randomInt(r) } : { dim_param: 'd' };
      else if (r() < 0.5) dims.push({ dim_value: int(r, 0, 5) });
      else dims.pop();
      return 'input dims';
    }
    case 11: {
      const v = pick(r, [...(g.input ?? []), ...(g.output ?? [])] as Obj[]);
      if (v?.type?.tensor_type) v.type.tensor_type.elem_type = int(r, 0, 30);
      return 'elem_type';
    }
    case 12: if (g.output?.length) pick(r, g.output as Obj[]).name = pick(r, tensorNames(g)); return 'output name';
    case 13: if (r() < 0.5) g.output = []; else g.input = [...(g.input ?? []), ...(g.input ?? []).slice(0, 1)]; return 'graph io';
    case 14: m.opset_import = r() < 0.2 ? [] : [{ domain: pick(r, ['', 'ai.onnx', 'x']), version: pick(r, [1, 6, 7, 9, 11, 13, 17, 22, 23, 99, -1]) }]; return 'opset';
    case 15: if (nodes.length) nodes.splice(int(r, 0, nodes.length - 1), 1); return 'drop node';
    case 16: if (n) nodes.splice(int(r, 0, nodes.length), 0, JSON.parse(JSON.stringify({ ...n, attribute: [] }))); return 'duplicate node';
    case 17: {
      // A cycle: an early node reads a late node's output.
      if (nodes.length < 2) return 'cycle';
      const [a, b] = [nodes[0], nodes[nodes.length - 1]];
      if (b.output?.length) a.input = [...(a.input ?? []), b.output[0]];
      return 'cycle';
    }
    case 18: if (n) { n.input = [...(n.input ?? []), pick(r, tensorNames(g))]; } return 'extra input';
    default: m.ir_version = pick(r, [0, 1, 3, 7, 10, 99, -1]); return 'ir_version';
  }
}

/** Positions biased towards the start, where a model's graph structure lies (weights follow). */
function position(r: Rng, length: number): number {
  return r() < 0.7 ? int(r, 0, Math.min(length, 1 << 16) - 1) : int(r, 0, length - 1);
}

function mutateBytes(src: Uint8Array, r: Rng): { bytes: Uint8Array; what: string } {
  const b = Uint8Array.from(src);
  const at = position(r, b.length);
  switch (int(r, 0, 6)) {
    case 0:
      for (let i = int(r, 1, 8); i > 0; i--) b[position(r, b.length)] ^= 1 << int(r, 0, 7);
      return { bytes: b, what: 'bit flips' };
    case 1:
      for (let i = int(r, 1, 4); i > 0; i--) b[position(r, b.length)] = pick(r, [0, 0xff, 0x7f, 0x80, 0x0a, 0x12, 0x1a, 0x22]);
      return { bytes: b, what: 'byte values' };
    case 2: return { bytes: b.subarray(0, int(r, 0, b.length - 1)), what: 'truncated' };
    case 3: {
      const ins = Uint8Array.from({ length: int(r, 1, 16) }, () => int(r, 0, 255));
      return { bytes: concat(b.subarray(0, at), ins, b.subarray(at)), what: 'inserted bytes' };
    }
    case 4: return { bytes: concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + int(r, 1, 64)))), what: 'deleted bytes' };
    case 5: {
      const len = int(r, 1, 256);
      return { bytes: concat(b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)), what: 'duplicated bytes' };
    }
    default: {
      // A varint with a huge value (a length or dim claiming more than the file holds).
      const big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01].slice(int(r, 0, 6));
      return { bytes: concat(b.subarray(0, at), Uint8Array.from(big), b.subarray(at + 1)), what: 'huge varint' };
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** Decoded once per seed: structural mutations then work on a deep copy of the graph part
 *  (initializers are shared and replaced, never edited in place, by copying the one touched). */
const objects = new WeakMap<Uint8Array, Obj>();
function toObject(bytes: Uint8Array): Obj {
  let o = objects.get(bytes);
  if (!o) objects.set(bytes, (o = ModelProto.toObject(ModelProto.decode(bytes), { longs: Number })));
  return o;
}

function copyModel(src: Obj): Obj {
  const g = src.graph ?? {};
  const clone = (x: unknown) => structuredClone(x);
  return {
    ...src,
    opset_import: clone(src.opset_import),
    graph: {
      ...g,
      node: clone(g.node), input: clone(g.input), output: clone(g.output),
      // Shallow copies: a mutation replaces fields of one initializer, never its data in place.
      initializer: (g.initializer ?? []).map((t: Obj) => ({ ...t, dims: [...(t.dims ?? [])] })),
    },
  };
}

export function mutate(seed: Seed, r: Rng): { bytes: Uint8Array; what: string[] } {
  const what: string[] = [];
  let bytes: Uint8Array;
  if (r() < 0.6) {
    const m = copyModel(toObject(seed.bytes));
    for (let i = int(r, 1, 3); i > 0; i--) what.push(mutateStructure(m, r));
    bytes = ModelProto.encode(ModelProto.fromObject(m)).finish();
  } else {
    bytes = seed.bytes;
  }
  if (what.length === 0 || r() < 0.2) {
    const b = mutateBytes(bytes, r);
    bytes = b.bytes;
    what.push(b.what);
  }
  return { bytes, what };
}

// ---- running the targets ----

export interface Finding {
  seed: string;
  iteration: number;
  mutation: string[];
  stage: string;
  error: string;
}

export interface FuzzStats {
  iterations: number;
  /** Outcomes: 'ok' or the P2Error code of the first stage that refused (models); the kind of
   *  comparison result (traces). */
  outcomes: Record<string, number>;
  findings: Finding[];
  /** Iterations slower than `slowMs`. */
  slow: { seed: string; iteration: number; ms: number; mutation: string[] }[];
}

export interface FuzzOptions {
  seed: number;
  /** Stop after this many iterations... */
  iterations?: number;
  /** ...or when this much time has passed. */
  seconds?: number;
  /** First iteration (default 0). */
  first?: number;
  /** Only this iteration (to repeat a finding). */
  only?: number;
  slowMs?: number;
  /** Called before each iteration (a watchdog can then name the one that hangs)... */
  onIteration?: (i: number) => void;
  /** ...and after it, with its outcome ('finding' for a finding). */
  onOutcome?: (i: number, outcome: string, ms: number) => void;
  onFinding?: (f: Finding) => void;
}

/** What a fuzz target does with one seed: mutate it, then run the code under test on the
 *  result, returning an outcome or throwing what is a bug. */
interface Target<S extends { name: string }, I> {
  mutate(seed: S, r: Rng): { input: I; what: string[] };
  exercise(input: I, seed: S, onStage: (stage: string) => void): Promise<string>;
}

function iterationRng(seed: number, iteration: number): Rng {
  return rng(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(iteration + 1, 0xc2b2ae35));
}

/** Iterations round-robin over the seeds until the count or time budget is reached; iteration i
 *  depends only on (seed, i). */
async function fuzzLoop<S extends { name: string }, I>(seeds: S[], target: Target<S, I>, o: FuzzOptions): Promise<FuzzStats> {
  const stats: FuzzStats = { iterations: 0, outcomes: {}, findings: [], slow: [] };
  const deadline = o.seconds === undefined ? Infinity : Date.now() + o.seconds * 1000;
  const first = o.only ?? o.first ?? 0;
  const last = o.only ?? (o.iterations ?? Infinity) - 1;
  for (let i = first; i <= last && Date.now() < deadline; i++) {
    const seed = seeds[i % seeds.length];
    o.onIteration?.(i);
    const { input, what } = target.mutate(seed, iterationRng(o.seed, i));
    let stage = '';
    let outcome = 'finding';
    const started = Date.now();
    try {
      outcome = await target.exercise(input, seed, (s) => { stage = s; });
      stats.outcomes[outcome] = (stats.outcomes[outcome] ?? 0) + 1;
    } catch (e) {
      const f: Finding = { seed: seed.name, iteration: i, mutation: what, stage, error: (e as Error)?.stack ?? String(e) };
      stats.findings.push(f);
      o.onFinding?.(f);
    }
    const ms = Date.now() - started;
    o.onOutcome?.(i, outcome, ms);
    if (ms > (o.slowMs ?? 5000)) stats.slow.push({ seed: seed.name, iteration: i, ms, mutation: what });
    stats.iterations++;
  }
  return stats;
}

/** Small arenas are also run with feeds. */
const RUN_ARENA_BYTES = 1 << 24;

/** Every stage a user's model goes through before calibration; returns 'ok' or the first
 *  P2Error code. Throws what is not a one-line P2Error. */
async function exerciseModel(bytes: Uint8Array, seed: Seed, onStage: (s: string) => void): Promise<string> {
  try {
    onStage('decodeModel');
    decodeModel(bytes);
    onStage('inspectModel');
    await inspectModel(bytes, { inputShape: seed.shape });
    onStage('loadModel');
    const model = await loadModel(bytes, { inputShape: seed.shape });
    if ((await model.arenaBytes()) <= RUN_ARENA_BYTES) {
      onStage('run');
      const feeds = Object.fromEntries(model.inputs.map((v, i) => {
        const n = v.shape.reduce((a, b) => a * b, 1);
        return [v.name, Float32Array.from({ length: n }, (_, k) => Math.sin(k * 0.37 + i) * 3)];
      }));
      await model.run(feeds);
    }
    return 'ok';
  } catch (e) {
    if (e instanceof P2Error && CODES.includes(e.code) && e.message && !e.message.includes('\n')) return e.code;
    throw e;
  }
}

/** Fuzz models: decodeModel, inspectModel, loadModel and a float run. */
export function fuzzModels(seeds: Seed[], o: FuzzOptions): Promise<FuzzStats> {
  return fuzzLoop(seeds, { mutate: (seed, r) => { const m = mutate(seed, r); return { input: m.bytes, what: m.what }; }, exercise: exerciseModel }, o);
}

// ---- trace folders ----

export interface TraceSeed {
  name: string;
  files: Map<string, Uint8Array>;
}

/** A trace folder as p2calib simulate writes it: 8- and 16-bit layers, signed and unsigned,
 *  4-D and 2-D, with float twins and layer_info.txt. */
export function traceSeeds(): TraceSeed[] {
  const r = rng(11);
  const layer = (dataId: number, type: QType, shape: number[]): TraceLayer => {
    const n = shape.reduce((a, b) => a * b, 1);
    const bits = type.endsWith('16') ? 16 : 8;
    const values = Array.from({ length: n }, () => Math.floor(r(0, 2 ** bits)) - (type.startsWith('int') ? 2 ** (bits - 1) : 0));
    const data = { uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array }[type].from(values);
    return { dataId, layerId: dataId, nodes: dataId ? [`Conv_${dataId}`] : [], tensor: `t${dataId}`, q: { bits: bits as 8 | 16, signed: type.startsWith('int'), scaleLog2: 4 }, type, shape, data };
  };
  const layers = [layer(0, 'uint8', [1, 3, 6, 5]), layer(1, 'int8', [1, 4, 6, 5]), layer(2, 'int16', [1, 4, 3, 3]), layer(3, 'uint8', [1, 7])];
  return [{ name: 'traces', files: traceFiles(layers) }];
}

const TRACE_NAMES = ['tidl_trace', 'dev_', '', 'x1', 'tidl_trace_subgraph_0_'];

function mutateName(name: string, r: Rng): string {
  switch (int(r, 0, 5)) {
    case 0: return name.replace(/\d/g, (d) => (r() < 0.15 ? String(int(r, 0, 9)) : d));
    case 1: { const at = int(r, 0, name.length - 1); return name.slice(0, at) + name.slice(at + 1); }
    case 2: { const at = int(r, 0, name.length); return name.slice(0, at) + pick(r, ['_', '0', 'x', '.y', '\n', '9']) + name.slice(at); }
    case 3: return name.replace(/\d{5}/, pick(r, ['99999', '00000', '65535', '123456789']));
    case 4: return name.replace(/^[^\d]*/, pick(r, TRACE_NAMES));
    default: return name.endsWith('.y') ? `${name.slice(0, -2)}_float.bin` : name.replace('_float.bin', '.y');
  }
}

function mutateTraces(seed: TraceSeed, r: Rng): { input: Map<string, Uint8Array>; what: string[] } {
  const files = new Map(seed.files);
  const what: string[] = [];
  for (let k = int(r, 1, 3); k > 0; k--) {
    const names = [...files.keys()];
    const name = pick(r, names);
    const bytes = files.get(name)!;
    switch (int(r, 0, 6)) {
      case 0: files.delete(name); what.push('delete'); break;
      case 1: files.delete(name); files.set(mutateName(name, r), bytes); what.push('rename'); break;
      case 2: files.set(mutateName(name, r), bytes); what.push('copy'); break;
      case 3: files.set(name, bytes.subarray(0, int(r, 0, bytes.length))); what.push('truncate'); break;
      case 4: files.set(name, concat(bytes, Uint8Array.from({ length: int(r, 1, bytes.length + 1) }, () => int(r, 0, 255)))); what.push('extend'); break;
      case 5: {
        const b = Uint8Array.from(bytes);
        for (let i = int(r, 1, 8); i > 0 && b.length; i--) b[int(r, 0, b.length - 1)] = int(r, 0, 255);
        files.set(name, b);
        what.push('bytes');
        break;
      }
      default: {
        const text = pick(r, ['', '\t\t\t', '1 2\n3\t4\tint8\tx\ty\tz\n', 'x\ty\n', '0\t0\tint16\tNaN\t\t\n-1\t99999\tuint8\t-3\ta\tb\n']);
        files.set(pick(r, [LAYER_INFO, `net_${LAYER_INFO}`]), new TextEncoder().encode(text));
        what.push('layer info');
      }
    }
  }
  return { input: files, what };
}

/** compareTraces both ways and with itself: a result (never an exception) whose problems and
 *  layer names are one line each. */
async function exerciseTraces(files: Map<string, Uint8Array>, seed: TraceSeed, onStage: (s: string) => void): Promise<string> {
  let kind = '';
  for (const [stage, a, b] of [['original vs mutated', seed.files, files], ['mutated vs original', files, seed.files], ['mutated vs itself', files, files]] as const) {
    onStage(stage);
    const c = compareTraces(a, b);
    for (const line of [...c.problems, ...c.layers.map((l) => l.name)]) {
      if (line.includes('\n')) throw new Error(`a problem or layer name spans lines: ${JSON.stringify(line)}`);
    }
    if (c.match && c.problems.length) throw new Error('a match with problems');
    kind ||= c.match ? 'match' : c.problems.length ? 'problems' : 'mismatch';
  }
  return kind;
}

/** Fuzz the trace reader and comparison. */
export function fuzzTraces(seeds: TraceSeed[], o: FuzzOptions): Promise<FuzzStats> {
  return fuzzLoop(seeds, { mutate: mutateTraces, exercise: exerciseTraces }, o);
}

// ---- hostile folders on disk: calibration folders and trace folders ----

/** What a fuzzed folder holds: files, and entries that are not plain files. */
type Entry =
  | { kind: 'file'; data: Uint8Array }
  | { kind: 'link'; target: string }
  | { kind: 'fifo' }
  | { kind: 'dir' }
  /** A sparse file of this many bytes (beyond every read limit, at no cost on disk). */
  | { kind: 'sparse'; size: number };
type Folder = Map<string, Entry>;

const filesOf = (files: Map<string, Uint8Array>): Folder => new Map([...files].map(([k, data]) => [k, { kind: 'file', data } as Entry]));

let fuzzRoot: string | undefined;
let folderCount = 0;
/** A fresh folder for one iteration, in a root beside one file outside every folder. */
function freshFolder(): string {
  if (!fuzzRoot) {
    fuzzRoot = mkdtempSync(join(tmpdir(), 'p2calib-fuzz-'));
    writeFileSync(join(fuzzRoot, 'outside.bin'), new Uint8Array(4096).fill(7));
    // One FIFO, hard-linked wherever a folder gets one (no process per FIFO).
    execFileSync('mkfifo', [join(fuzzRoot, 'fifo')]);
  }
  const d = join(fuzzRoot, `f${folderCount++}`);
  mkdirSync(d);
  return d;
}

function writeFolder(d: string, folder: Folder): void {
  for (const [name, e] of folder) {
    if (!name || name.includes('/') || name === '.' || name === '..' || name.includes('\0')) continue;
    const p = join(d, name);
    if (e.kind === 'file') writeFileSync(p, e.data);
    else if (e.kind === 'link') symlinkSync(e.target === 'OUTSIDE' ? join(fuzzRoot!, 'outside.bin') : e.target, p);
    else if (e.kind === 'fifo') linkSync(join(fuzzRoot!, 'fifo'), p);
    else if (e.kind === 'dir') mkdirSync(p);
    else { writeFileSync(p, ''); truncateSync(p, e.size); }
  }
}

/** Replace an entry by something that is not a plain file; sparse files get one of `sizes`
 *  (just beyond the reader's limit, and far beyond). */
function hostileEntry(folder: Folder, name: string, r: Rng, limit: number): string {
  const kinds: [string, Entry][] = [
    ['link to /dev/zero', { kind: 'link', target: '/dev/zero' }], ['dangling link', { kind: 'link', target: 'nowhere' }],
    ['link loop', { kind: 'link', target: name }], ['link outside', { kind: 'link', target: 'OUTSIDE' }],
    ['link to /etc/passwd', { kind: 'link', target: '/etc/passwd' }], ['link to the folder', { kind: 'link', target: '.' }],
    ['fifo', { kind: 'fifo' }], ['folder', { kind: 'dir' }], ['sparse 3 GiB', { kind: 'sparse', size: 3 * 2 ** 30 }],
    ['sparse, one byte over the limit', { kind: 'sparse', size: limit + 1 }],
  ];
  const others = [...folder.keys()].filter((k) => k !== name && folder.get(k)!.kind === 'file');
  if (others.length && r() < 0.15) {
    folder.set(name, { kind: 'link', target: pick(r, others) });
    return `${name}: link to a sibling`;
  }
  const [what, entry] = pick(r, kinds);
  folder.set(name, entry);
  return `${name}: ${what}`;
}

export interface CalibrationSeed {
  name: string;
  model: Model;
  files: Map<string, Uint8Array>;
  table: Record<string, unknown>;
  feeds: Record<string, Float32Array>;
}

/** Small models calibrated with different options, saved as the three files of a folder. */
export async function calibrationSeeds(): Promise<CalibrationSeed[]> {
  const conv = buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 8, 8] }], outputs: [{ name: 'y' }],
    nodes: [
      node('Conv', ['x', 'w1', 'b1'], ['c1'], { pads: [1, 1, 1, 1] }), node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'wd', 'bd'], ['c2'], { group: 4, pads: [1, 1, 1, 1] }), node('Clip', ['c2', 'lo', 'hi'], ['r2']),
      node('Add', ['r2', 'r1'], ['s']), node('GlobalAveragePool', ['s'], ['g']), node('Flatten', ['g'], ['f']),
      node('Gemm', ['f', 'fw', 'fb'], ['y'], { transB: 1 }),
    ],
    initializers: {
      w1: randomTensor([4, 3, 3, 3], 1), b1: randomTensor([4], 2), wd: randomTensor([4, 1, 3, 3], 3), bd: randomTensor([4], 4),
      lo: floats([], [0]), hi: floats([], [6]), fw: randomTensor([5, 4], 5), fb: randomTensor([5], 6),
    },
  });
  const model = await loadModel(conv);
  const samples = [0, 1, 2].map((s) => Float32Array.from({ length: 192 }, (_, i) => Math.sin(i * 0.3 + s) * 2));
  const seeds: CalibrationSeed[] = [];
  const configs: [string, CalibrateOptions, boolean][] = [
    ['advanced 8-bit', {}, false], ['advanced-dw 16-bit int16 bias', { preset: 'advanced-dw', bits: 16, biasMode: 'int16' }, false],
    ['simple mixed precision', { preset: 'simple', sixteenBit: ['c2'] }, false], ['pixel input', { preset: 'simple' }, true],
  ];
  for (const [name, options, pixels] of configs) {
    const m = pixels ? model.withPixelInput({ scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], layout: 'NCHW' }) : model;
    const cal = await calibrate(m, pixels ? samples.map((s) => s.map((v) => Math.round((v + 2) * 60))) : samples, options);
    const json = tableJson(cal.table);
    seeds.push({
      name, model, table: JSON.parse(json), feeds: { x: samples[0] },
      files: new Map([['calibration.json', new TextEncoder().encode(json)], ['model.qdq.onnx', cal.toQdqOnnx()], ['model.calibrated.onnx', cal.toCalibratedOnnx()]]),
    });
  }
  return seeds;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const JSON_VALUES: Json[] = [
  0, -1, 1, 0.5, -0.5, 7, 64, 65, -65, 1e308, -1e308, 5e-324, 2 ** 31, -(2 ** 31), 2 ** 53 + 2, 1e-30, null, true, false, '', 'x',
  'NaN', '\u001b[2J\n', [], {}, [1, 2, 3], [null], { range: [0, 1] }, 'p2calib-calibration', 'simple', 'advanced', 'int16', 'mma',
];

/** A random value: interesting ones, long arrays and strings, deep nesting. */
function jsonValue(r: Rng): Json {
  switch (int(r, 0, 9)) {
    case 0: return Array.from({ length: int(r, 0, 3000) }, () => r(-1e6, 1e6));
    case 1: { let v: Json = 1; for (let i = int(r, 10, 3000); i > 0; i--) v = [v]; return v; }
    case 2: return 'x'.repeat(int(r, 0, 100000));
    case 3: return r(-1e9, 1e9);
    default: return structuredClone(pick(r, JSON_VALUES));
  }
}

/** A random place in a JSON value: [parent, key] pairs from the root. */
function randomPath(v: Json, r: Rng): (string | number)[] {
  const path: (string | number)[] = [];
  let at = v;
  while (at !== null && typeof at === 'object' && r() < 0.8) {
    const keys: (string | number)[] = Array.isArray(at) ? at.map((_, i) => i) : Object.keys(at);
    if (!keys.length) break;
    const k = pick(r, keys);
    path.push(k);
    at = (at as Record<string | number, Json>)[k];
  }
  return path;
}

function mutateJson(table: Json, r: Rng, what: string[]): Json {
  const root = structuredClone(table);
  for (let k = int(r, 1, 3); k > 0; k--) {
    const path = randomPath(root, r);
    if (!path.length) continue;
    let parent = root as Record<string | number, Json>;
    for (const p of path.slice(0, -1)) parent = parent[p] as Record<string | number, Json>;
    const key = path[path.length - 1];
    const old = parent[key];
    const label = path.join('.');
    const op = int(r, 0, 5);
    if (op === 1 && typeof old === 'number') {
      parent[key] = pick(r, [old + 1, old - 1, -old, old * 2 ** int(r, -40, 40), Math.round(old) + 0.5]);
      what.push(`nudge ${label}`);
      continue;
    }
    switch (op) {
      case 0: delete parent[key]; what.push(`delete ${label}`); break;
      case 1: case 2: parent[key] = jsonValue(r); what.push(`replace ${label}`); break;
      case 3: if (!Array.isArray(parent)) { parent[`${key}x`] = old; what.push(`copy ${label} to a new key`); } break;
      case 4: if (Array.isArray(old)) { parent[key] = [...old, ...old]; what.push(`double ${label}`); } break;
      default: if (Array.isArray(old)) { parent[key] = old.slice(0, int(r, 0, old.length)); what.push(`cut ${label}`); }
    }
  }
  return root;
}

function mutateCalibration(seed: CalibrationSeed, r: Rng): { input: Folder; what: string[] } {
  const folder = filesOf(seed.files);
  const what: string[] = [];
  const choice = r();
  if (choice < 0.15) {
    what.push(hostileEntry(folder, 'calibration.json', r, MAX_TABLE_BYTES));
  } else if (choice < 0.3) {
    const text = seed.files.get('calibration.json')!;
    const b = mutateBytes(text, r);
    folder.set('calibration.json', { kind: 'file', data: b.bytes });
    what.push(`text: ${b.what}`);
  } else {
    const t = mutateJson(seed.table as Json, r, what) as Record<string, unknown>;
    // Half the edits carry a recomputed hash, to reach the checks behind it.
    const rehash = r() < 0.5 && t !== null && typeof t === 'object' && !Array.isArray(t);
    if (rehash) {
      try {
        t.integrity = tableHash(t);
        what.push('rehashed');
      } catch {
        // Nesting too deep to hash: the loader refuses it the same way.
      }
    }
    folder.set('calibration.json', { kind: 'file', data: new TextEncoder().encode(JSON.stringify(t)) });
  }
  return { input: folder, what };
}

/** readCalibration on the folder, then a fixed-point run and the exports of what loads. */
async function exerciseCalibration(folder: Folder, seed: CalibrationSeed, onStage: (s: string) => void): Promise<string> {
  const d = freshFolder();
  try {
    writeFolder(d, folder);
    onStage('readCalibration');
    const cal = readCalibration(seed.model, d);
    onStage('run');
    const out = await cal.run(seed.feeds);
    if (!Object.keys(out).length) throw new Error('a loaded calibration ran with no outputs');
    onStage('export');
    cal.toQdqOnnx();
    return 'ok';
  } catch (e) {
    if (e instanceof P2Error && CODES.includes(e.code) && e.message && !e.message.includes('\n')) return e.code;
    throw e;
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

function withCleanup(run: Promise<FuzzStats>): Promise<FuzzStats> {
  return run.finally(() => {
    if (fuzzRoot) rmSync(fuzzRoot, { recursive: true, force: true });
    fuzzRoot = undefined;
  });
}

/** Fuzz calibration folders: edited, truncated and replaced calibration.json files. */
export function fuzzCalibrations(seeds: CalibrationSeed[], o: FuzzOptions): Promise<FuzzStats> {
  return withCleanup(fuzzLoop(seeds, { mutate: mutateCalibration, exercise: exerciseCalibration }, o));
}

function mutateTraceFolder(seed: TraceSeed, r: Rng): { input: Folder; what: string[] } {
  const { input, what } = r() < 0.7 ? mutateTraces(seed, r) : { input: new Map(seed.files), what: [] };
  const folder = filesOf(input);
  for (let k = int(r, r() < 0.4 ? 0 : 1, 3); k > 0; k--) {
    const names = [...folder.keys()];
    what.push(hostileEntry(folder, r() < 0.2 ? `tidl_trace9${int(r, 0, 999)}_0001_0001_00001_00001_00004x00001.y` : pick(r, names), r, MAX_TRACE_BYTES));
  }
  return { input: folder, what };
}

/** Both folders from disk (problems listed, never thrown) compared both ways. */
async function exerciseTraceFolder(folder: Folder, seed: TraceSeed, onStage: (s: string) => void): Promise<string> {
  const [da, db] = [freshFolder(), freshFolder()];
  try {
    writeFolder(da, filesOf(seed.files));
    writeFolder(db, folder);
    onStage('readTraceDir');
    const problems: string[] = [];
    const [a, b] = [readTraceDir(da, problems), readTraceDir(db, problems)];
    let kind = '';
    for (const [stage, x, y] of [['original vs folder', a, b], ['folder vs original', b, a]] as const) {
      onStage(stage);
      const c = compareTraces(x, y, [da, db], 0, problems);
      for (const line of [...c.problems, ...c.layers.map((l) => l.name)]) {
        if (line.includes('\n')) throw new Error(`a problem or layer name spans lines: ${JSON.stringify(line)}`);
      }
      if (c.match && c.problems.length) throw new Error('a match with problems');
      kind ||= c.match ? 'match' : problems.length ? 'unreadable' : c.problems.length ? 'problems' : 'mismatch';
    }
    return kind;
  } finally {
    rmSync(da, { recursive: true, force: true });
    rmSync(db, { recursive: true, force: true });
  }
}

/** Fuzz trace folders on disk: mutated files and entries that are not files. */
export function fuzzTraceFolders(seeds: TraceSeed[], o: FuzzOptions): Promise<FuzzStats> {
  return withCleanup(fuzzLoop(seeds, { mutate: mutateTraceFolder, exercise: exerciseTraceFolder }, o));
}

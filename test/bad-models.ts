/**
 * Broken and hostile inputs. Models, each with the error code and message the SDK must give for
 * it (test/harden-models.test.ts checks them through the SDK, test/harden-cli.test.ts through the
 * real CLI process); random bytes; a PNG header claiming a giant image.
 */
import { crc32, deflateSync } from 'node:zlib';
import type { ErrorCode } from '../sdk/errors.js';
import { ModelProto } from '../sdk/onnx/schema.js';
import { buildModel, floats, ints, node, randomTensor, rng } from './helpers.js';

export interface BadModel {
  name: string;
  bytes: () => Uint8Array;
  code: ErrorCode;
  message: RegExp;
  /** inspect lists the problem in its report (unsupported ops) instead of failing. */
  reported?: boolean;
}

type Obj = Record<string, unknown>;

/** A ModelProto from plain fields (the ONNX names), for what the IR writer cannot express. */
export function proto(graph: Obj, model: Obj = {}): Uint8Array {
  return ModelProto.encode(ModelProto.fromObject({ ir_version: 7, opset_import: [{ version: 13 }], ...model, graph })).finish();
}

export function valueInfo(name: string, dims: (number | string)[], elemType = 1): Obj {
  const dim = dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d }));
  return { name, type: { tensor_type: { elem_type: elemType, shape: { dim } } } };
}

/** x [1,4] -> Relu -> y, with extra graph fields. */
function reluGraph(extra: Obj = {}): Obj {
  return { node: [{ op_type: 'Relu', input: ['x'], output: ['y'] }], input: [valueInfo('x', [1, 4])], output: [valueInfo('y', [1, 4])], ...extra };
}

const relu = { inputs: [{ name: 'x', dims: [1, 4] }], outputs: [{ name: 'y' }] };
const image = { inputs: [{ name: 'x', dims: [1, 3, 8, 8] }], outputs: [{ name: 'y' }] };

export function noise(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r(0, 256)));
}

/** A PNG whose header claims width x height; its pixel data is a few bytes (a decompression bomb
 *  as far as the header goes). */
export function pngHeader(width: number, height: number): Uint8Array {
  const chunk = (type: string, data: Uint8Array) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), body.length + 4);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(64))), chunk('IEND', Buffer.alloc(0))]);
}

function small(): Uint8Array {
  return buildModel({ ...image, nodes: [node('Conv', ['x', 'w', 'b'], ['c'], { pads: [1, 1, 1, 1] }), node('Relu', ['c'], ['y'])], initializers: { w: randomTensor([4, 3, 3, 3], 1), b: randomTensor([4], 2) } });
}

/** A Conv (weight w [2,3,3,3], bias b) followed by BatchNormalization, with one value replaced. */
function convBn(edit: { w?: [number, number]; b?: number; variance?: number; epsilon?: number; wDims?: number[] }): Uint8Array {
  const wDims = edit.wDims ?? [2, 3, 3, 3];
  const w = randomTensor(wDims, 1);
  if (edit.w) w.data[edit.w[0]] = edit.w[1];
  const b = randomTensor([wDims[0]], 2);
  if (edit.b !== undefined) b.data[1] = edit.b;
  const v = randomTensor([wDims[0]], 3, 0.5, 1);
  if (edit.variance !== undefined) v.data[1] = edit.variance;
  return buildModel({
    ...image,
    nodes: [
      node('Conv', ['x', 'w', 'b'], ['c'], { pads: [1, 1, 1, 1] }),
      node('BatchNormalization', ['c', 'g', 'bb', 'm', 'v'], ['y'], { epsilon: edit.epsilon ?? 1e-5 }),
    ],
    initializers: { w, b, g: randomTensor([wDims[0]], 4, 0.5, 2), bb: randomTensor([wDims[0]], 5), m: randomTensor([wDims[0]], 6), v },
  });
}

/** Numbers no calibration survives: named with the tensor, the value and its position. */
function badParameters(): BadModel[] {
  return [
    { name: 'a NaN weight', bytes: () => convBn({ w: [29, NaN] }), code: 'BAD_MODEL', message: /initializer "w" holds NaN at \[1,0,0,2\]/ },
    { name: 'an infinite weight', bytes: () => convBn({ w: [0, Infinity] }), code: 'BAD_MODEL', message: /Conv "Conv_c": weight "w" holds Infinity at \[0,0,0,0\]; weights and biases must be finite and below 2\^64/ },
    { name: 'a 3e38 weight', bytes: () => convBn({ w: [5, -3e38] }), code: 'BAD_MODEL', message: /Conv "Conv_c": weight "w" holds -3e\+38 at \[0,0,1,2\]/ },
    { name: 'a NaN bias', bytes: () => convBn({ b: NaN }), code: 'BAD_MODEL', message: /initializer "b" holds NaN at \[1\]/ },
    { name: 'a negative BatchNormalization variance', bytes: () => convBn({ variance: -0.5 }), code: 'BAD_MODEL', message: /BatchNormalization "BatchNormalization_y": variance \+ epsilon is -0\.49999 at channel 1 \(variance "v" -0\.5, epsilon 0\.00001\); it must be positive/ },
    { name: 'a BatchNormalization variance + epsilon of 0', bytes: () => convBn({ variance: -0.25, epsilon: 0.25 }), code: 'BAD_MODEL', message: /variance \+ epsilon is 0 at channel 1/ },
    { name: 'a weight of dims [0,3,3,3]', bytes: () => convBn({ wDims: [0, 3, 3, 3] }), code: 'BAD_MODEL', message: /weight "w" has no elements \(dims \[0,3,3,3\]\)/ },
    {
      name: 'a NaN in a Constant node',
      bytes: () => buildModel({ ...relu, nodes: [node('Constant', [], ['k'], { value: floats([4], [1, NaN, 2, 3]) }), node('Add', ['x', 'k'], ['y'])] }),
      code: 'BAD_MODEL', message: /Constant "Constant_k"'s value holds NaN at \[1\]/,
    },
  ];
}

export const BAD_MODELS: BadModel[] = [
  { name: 'an empty file', bytes: () => new Uint8Array(0), code: 'NOT_ONNX', message: /the file is empty/ },
  { name: 'random bytes', bytes: () => noise(4096, 3), code: 'NOT_ONNX', message: /not an ONNX model/ },
  { name: 'a text file', bytes: () => new TextEncoder().encode('name,value\nconv1,3\n'), code: 'NOT_ONNX', message: /not an ONNX model/ },
  { name: 'a truncated model', bytes: () => small().subarray(0, small().length >> 1), code: 'TRUNCATED', message: /the ONNX file is truncated or corrupt/ },
  {
    name: 'a valid protobuf that is not a model',
    bytes: () => ModelProto.encode(ModelProto.fromObject({ producer_name: 'not a model', doc_string: 'x' })).finish(),
    code: 'NOT_ONNX', message: /no ir_version or no graph/,
  },
  // Field 7 (graph) with wire type 5 (fixed32), then a field with the invalid wire type 7.
  { name: 'odd wire types', bytes: () => Uint8Array.of(0x08, 0x07, 0x3d, 1, 2, 3, 4, 0x0f, 0), code: 'NOT_ONNX', message: /not a valid ONNX protobuf/ },
  {
    name: 'raw_data shorter than its dims',
    bytes: () => proto(reluGraph({ initializer: [{ name: 'w', dims: [1000], data_type: 1, raw_data: new Uint8Array(12) }] })),
    code: 'BAD_MODEL', message: /initializer "w": raw_data holds 12 bytes but its dims need 4000/,
  },
  {
    name: 'float_data count unlike its dims',
    bytes: () => proto(reluGraph({ initializer: [{ name: 'w', dims: [4], data_type: 1, float_data: [1, 2, 3] }] })),
    code: 'BAD_MODEL', message: /initializer "w": holds 3 values but its dims \[4\] need 4/,
  },
  {
    name: '10^9 output channels in a weight',
    bytes: () => proto(reluGraph({ initializer: [{ name: 'w', dims: [1e9, 3, 1, 1], data_type: 1, raw_data: new Uint8Array(16) }] })),
    code: 'TOO_LARGE', message: /initializer "w": \[1000000000,3,1,1\] has 3000000000 elements, beyond the limit/,
  },
  {
    name: 'a graph input of 10^9 channels',
    bytes: () => proto({ ...reluGraph(), input: [valueInfo('x', [1, 1e9, 224, 224])] }),
    code: 'TOO_LARGE', message: /graph input "x": \[1,1000000000,224,224\]/,
  },
  {
    name: 'an input shape whose element count overflows',
    bytes: () => proto({ ...reluGraph(), input: [valueInfo('x', [2 ** 40, 2 ** 40, 2 ** 40])] }),
    code: 'TOO_LARGE', message: /graph input "x": .* elements, beyond the limit/,
  },
  {
    name: 'a negative dimension in a weight',
    bytes: () => proto(reluGraph({ initializer: [{ name: 'w', dims: [-3, 2], data_type: 1, float_data: [] }] })),
    code: 'BAD_MODEL', message: /initializer "w": invalid dimension -3/,
  },
  {
    name: 'a negative dimension in a graph input',
    bytes: () => proto({ ...reluGraph(), input: [valueInfo('x', [1, -5])] }),
    code: 'BAD_MODEL', message: /graph input "x": invalid dimension -5/,
  },
  {
    name: 'pads that make a 5*10^10-element intermediate tensor',
    bytes: () => buildModel({ ...image, nodes: [node('Conv', ['x', 'w'], ['y'], { pads: [60000, 60000, 60000, 60000] })], initializers: { w: randomTensor([4, 3, 1, 1], 1) } }),
    code: 'TOO_LARGE', message: /node "Conv_y" \(Conv\) output 0: \[1,4,120008,120008\] has 57607680256 elements/,
  },
  {
    name: 'Resize scales of 10^5',
    bytes: () => buildModel({ ...image, nodes: [node('Resize', ['x', '', 's'], ['y'])], initializers: { s: floats([4], [1, 1, 1e5, 1e5]) } }),
    code: 'TOO_LARGE', message: /node "Resize_y" \(Resize\) output: \[1,3,800000,800000\]/,
  },
  {
    name: 'a ConstantOfShape of 10^12 elements',
    bytes: () => buildModel({ ...relu, nodes: [node('ConstantOfShape', ['s'], ['c']), node('Add', ['x', 'c'], ['y'])], initializers: { s: ints([2], [1e6, 1e6]) } }),
    code: 'TOO_LARGE', message: /\(ConstantOfShape\) output: \[1000000,1000000\]/,
  },
  {
    name: 'an activation arena beyond 4 GiB',
    // 17 outputs of 2^26 floats each, all live at the end.
    bytes: () => buildModel({
      inputs: [{ name: 'x', dims: [1, 16, 2048, 2048] }],
      outputs: Array.from({ length: 17 }, (_, i) => ({ name: `y${i}` })),
      nodes: Array.from({ length: 17 }, (_, i) => node(i % 2 ? 'Relu' : 'Sigmoid', ['x'], [`y${i}`])),
    }),
    code: 'TOO_LARGE', message: /the activation arena needs \d+ bytes; WASM memory is limited to 4 GiB/,
  },
  {
    name: 'a cycle',
    bytes: () => buildModel({ ...relu, outputs: [{ name: 'b' }], nodes: [node('Add', ['x', 'b'], ['a']), node('Relu', ['a'], ['b'])] }),
    code: 'BAD_MODEL', message: /the graph has a cycle through nodes "Add_a", "Relu_b"/,
  },
  {
    name: 'a node reading its own output',
    bytes: () => buildModel({ ...relu, nodes: [node('Add', ['x', 'y'], ['y'])] }),
    code: 'BAD_MODEL', message: /cycle through nodes "Add_y"/,
  },
  {
    name: 'a missing weight initializer',
    bytes: () => buildModel({ ...image, nodes: [node('Conv', ['x', 'w', 'b'], ['y'])], initializers: { b: randomTensor([4], 2) } }),
    code: 'BAD_MODEL', message: /node "Conv_y" \(Conv\) reads tensor "w", which no node, input or initializer produces/,
  },
  {
    name: 'an op in an unknown domain',
    bytes: () => buildModel({ ...relu, nodes: [node('Zap', ['x'], ['y'], {}, 'com.acme')] }),
    code: 'UNSUPPORTED', message: /unsupported ops: com\.acme:Zap \(node "Zap_y"\)/, reported: true,
  },
  { name: 'opset 5 (too old)', bytes: () => buildModel({ ...relu, nodes: [node('Relu', ['x'], ['y'])], opset: 5 }), code: 'UNSUPPORTED', message: /opset 5; p2calib reads opsets 7 to 22/ },
  { name: 'opset 40 (too new)', bytes: () => buildModel({ ...relu, nodes: [node('Relu', ['x'], ['y'])], opset: 40 }), code: 'UNSUPPORTED', message: /opset 40; p2calib reads opsets 7 to 22/ },
  {
    name: 'an attribute of the wrong type (strides as a string)',
    bytes: () => buildModel({ ...image, nodes: [node('Conv', ['x', 'w'], ['y'], { strides: 'two' })], initializers: { w: randomTensor([4, 3, 1, 1], 1) } }),
    code: 'BAD_MODEL', message: /node "Conv_y" \(Conv\): attribute "strides" must be int or float or ints or floats, got string/,
  },
  {
    name: 'a zero stride',
    bytes: () => buildModel({ ...image, nodes: [node('MaxPool', ['x'], ['y'], { kernel_shape: [2, 2], strides: [0, 2] })] }),
    code: 'BAD_MODEL', message: /strides must be 2 integers from 1 to 65536, got \[0,2\]/,
  },
  {
    name: 'a fractional axis',
    bytes: () => buildModel({ ...relu, nodes: [node('Softmax', ['x'], ['y'], { axis: 0.5 })] }),
    code: 'BAD_MODEL', message: /attribute "axis" must be an integer, got 0.5/,
  },
  {
    name: 'a tensor of unknown element type',
    bytes: () => proto(reluGraph({ initializer: [{ name: 'w', dims: [2], data_type: 99, raw_data: new Uint8Array(8) }] })),
    code: 'UNSUPPORTED', message: /initializer "w": element type 99 is not supported/,
  },
  {
    name: 'a string graph input',
    bytes: () => proto({ ...reluGraph(), input: [valueInfo('x', [1, 4], 8)] }),
    code: 'UNSUPPORTED', message: /graph input "x": string tensors are not supported/,
  },
  {
    name: 'a Cast to strings',
    bytes: () => buildModel({ ...relu, nodes: [node('Cast', ['x'], ['y'], { to: 8 })] }),
    code: 'UNSUPPORTED', message: /\(Cast\): casting to strings is not supported/,
  },
  {
    name: 'a node with no outputs',
    bytes: () => proto({ ...reluGraph(), node: [{ op_type: 'Relu', input: ['x'], output: ['y'] }, { op_type: 'Sigmoid', name: 'lost', input: ['x'] }] }),
    code: 'BAD_MODEL', message: /node "lost" \(Sigmoid\) has no outputs/,
  },
  {
    name: 'a node with more outputs than its op makes',
    bytes: () => buildModel({ ...relu, nodes: [node('Relu', ['x'], ['y', 'extra'])] }),
    code: 'UNSUPPORTED', message: /node "Relu_y" \(Relu\) has 2 outputs; p2calib computes 1 for Relu/,
  },
  {
    name: 'two nodes writing the same tensor',
    bytes: () => buildModel({ ...relu, nodes: [node('Relu', ['x'], ['y']), node('Sigmoid', ['x'], ['y'])] }),
    code: 'BAD_MODEL', message: /tensor "y" is produced more than once/,
  },
  {
    name: 'an initializer defined twice',
    bytes: () => proto(reluGraph({ initializer: [{ name: 'w', dims: [1], data_type: 1, float_data: [1] }, { name: 'w', dims: [1], data_type: 1, float_data: [2] }] })),
    code: 'BAD_MODEL', message: /initializer "w" is defined twice/,
  },
  {
    name: 'a graph input listed twice',
    bytes: () => proto({ ...reluGraph(), input: [valueInfo('x', [1, 4]), valueInfo('x', [1, 4])] }),
    code: 'BAD_MODEL', message: /graph input "x" is listed twice/,
  },
  {
    name: 'a graph without outputs',
    bytes: () => proto({ ...reluGraph(), output: [] }),
    code: 'BAD_MODEL', message: /the graph has no outputs/,
  },
  ...badParameters(),
  {
    name: 'a tensor name with a line break',
    bytes: () => proto({ ...reluGraph(), node: [{ op_type: 'Add', input: ['x', 'gh\nost'], output: ['y'] }] }),
    code: 'BAD_MODEL', message: /reads tensor "gh\\u000aost", which no node/,
  },
];

// Every supported op, built as a one-node model with the project's own IR and writer, against
// onnxruntime-node: shape inference (the declared output shape is ours) and the float engine.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel } from '../sdk/index.js';
import { supportedOps } from '../sdk/ops/index.js';
import type { Node, Tensor } from '../sdk/graph/ir.js';
import { buildModel, diff, floats, ints, node, ortRun, randomArray, randomTensor } from './helpers.js';

interface Case {
  name: string;
  nodes: Node[];
  inputs: Record<string, number[]>;
  initializers?: Record<string, Tensor>;
  opset?: number;
  /** Input value range (default -2..2). */
  range?: [number, number];
}

const c = (name: string, n: Node | Node[], inputs: Record<string, number[]>, initializers: Record<string, Tensor> = {}, opset = 13, range?: [number, number]): Case =>
  ({ name, nodes: Array.isArray(n) ? n : [n], inputs, initializers, opset, range });
const x4 = { x: [1, 3, 6, 7] };

const CASES: Case[] = [
  c('Conv grouped, strided, dilated, asymmetric pads', node('Conv', ['x', 'w', 'b'], ['y'], { group: 3, strides: [2, 1], dilations: [1, 2], pads: [1, 0, 2, 1] }), x4, { w: randomTensor([6, 1, 3, 3], 1), b: randomTensor([6], 2) }),
  c('Conv auto_pad SAME_UPPER', node('Conv', ['x', 'w'], ['y'], { auto_pad: 'SAME_UPPER', strides: [2, 2] }), x4, { w: randomTensor([4, 3, 3, 3], 3) }),
  c('Conv 1-D', node('Conv', ['x', 'w'], ['y'], { pads: [1, 1] }), { x: [2, 3, 9] }, { w: randomTensor([5, 3, 3], 4) }),
  c('ConvTranspose', node('ConvTranspose', ['x', 'w', 'b'], ['y'], { strides: [2, 2], pads: [1, 1, 0, 0], output_padding: [1, 0] }), x4, { w: randomTensor([3, 2, 3, 3], 5), b: randomTensor([2], 6) }),
  c('ConvTranspose grouped', node('ConvTranspose', ['x', 'w'], ['y'], { group: 3, strides: [1, 2] }), x4, { w: randomTensor([3, 1, 2, 2], 7) }),
  c('Gemm transA/transB alpha beta', node('Gemm', ['a', 'bm', 'cc'], ['y'], { transA: 1, transB: 1, alpha: 0.5, beta: { float: 2 } }), { a: [5, 4] }, { bm: randomTensor([3, 5], 8), cc: randomTensor([1, 3], 9) }),
  c('MatMul batched broadcast', node('MatMul', ['a', 'bm'], ['y']), { a: [2, 1, 3, 4] }, { bm: randomTensor([3, 4, 5], 10) }),
  c('MatMul 1-D', node('MatMul', ['a', 'v'], ['y']), { a: [3, 4] }, { v: randomTensor([4], 11) }),
  ...['Add', 'Sub', 'Mul', 'Div'].map((op) => c(`${op} broadcast`, node(op, ['x', 'k'], ['y']), x4, { k: randomTensor([3, 1, 7], 12, 0.5, 2) })),
  c('Pow', node('Pow', ['x', 'k'], ['y']), x4, { k: floats([], [2]) }),
  c('Max/Min', [node('Max', ['x', 'k'], ['m']), node('Min', ['m', 'k2'], ['y'])], x4, { k: randomTensor([7], 13), k2: randomTensor([1, 3, 1, 1], 14) }),
  c('PRelu', node('PRelu', ['x', 's'], ['y']), x4, { s: randomTensor([3, 1, 1], 15) }),
  ...['Relu', 'Sigmoid', 'Tanh', 'Exp', 'Abs', 'Neg', 'Floor', 'Ceil', 'HardSwish', 'Softplus'].map((op) => c(op, node(op, ['x'], ['y']), x4, {}, 14)),
  c('Sqrt, Log, Reciprocal', [node('Sqrt', ['x'], ['s']), node('Log', ['s'], ['l']), node('Reciprocal', ['l'], ['y'])], x4, {}, 13, [1.5, 9]),
  c('LeakyRelu', node('LeakyRelu', ['x'], ['y'], { alpha: 0.3 }), x4),
  c('Elu', node('Elu', ['x'], ['y'], { alpha: 0.7 }), x4),
  c('HardSigmoid', node('HardSigmoid', ['x'], ['y'], { alpha: 0.25, beta: 0.4 }), x4),
  c('Clip inputs', node('Clip', ['x', 'lo', 'hi'], ['y']), x4, { lo: floats([], [-0.5]), hi: floats([], [1.25]) }),
  c('Clip attributes (opset 9)', node('Clip', ['x'], ['y'], { min: { float: -1 }, max: { float: 0.5 } }), x4, {}, 9),
  c('Softmax opset 13', node('Softmax', ['x'], ['y'], { axis: 1 }), x4),
  c('Softmax opset 11 (2-D coercion)', node('Softmax', ['x'], ['y'], { axis: 2 }), x4, {}, 11),
  c('LogSoftmax', node('LogSoftmax', ['x'], ['y']), x4),
  c('Concat', node('Concat', ['x', 'k'], ['y'], { axis: 2 }), x4, { k: randomTensor([1, 3, 2, 7], 16) }),
  c('Split input (13)', [node('Split', ['x', 'sp'], ['a', 'b'], { axis: 3 }), node('Sub', ['a', 'b'], ['y'])], { x: [1, 3, 6, 8] }, { sp: ints([2], [4, 4]) }),
  c('Split attribute (11)', [node('Split', ['x'], ['a', 'b'], { axis: 1, split: [1, 2] }), node('ReduceMean', ['b'], ['y'], { axes: [1] })], x4, {}, 11),
  c('Slice with steps', node('Slice', ['x', 's', 'e', 'a', 'st'], ['y']), x4, { s: ints([2], [5, 0]), e: ints([2], [0, 100]), a: ints([2], [3, 1]), st: ints([2], [-2, 2]) }),
  c('Slice attributes (9)', node('Slice', ['x'], ['y'], { starts: [1, -4], ends: [3, 1000], axes: [2, 3] }), x4, {}, 9),
  c('Reshape with 0 and -1', node('Reshape', ['x', 's'], ['y']), x4, { s: ints([3], [0, -1, 7]) }),
  c('Flatten', node('Flatten', ['x'], ['y'], { axis: 2 }), x4),
  c('Transpose', node('Transpose', ['x'], ['y'], { perm: [0, 3, 1, 2] }), x4),
  c('Squeeze/Unsqueeze inputs', [node('Unsqueeze', ['x', 'u'], ['a']), node('Squeeze', ['a', 'u'], ['y'])], x4, { u: ints([2], [0, -1]) }),
  c('Squeeze/Unsqueeze attributes (11)', [node('Unsqueeze', ['x'], ['a'], { axes: [2] }), node('Squeeze', ['a'], ['y'], { axes: [2] })], x4, {}, 11),
  c('Pad constant/reflect/edge', [
    node('Pad', ['x', 'p1', 'v'], ['a'], { mode: 'constant' }), node('Pad', ['a', 'p2'], ['b'], { mode: 'reflect' }), node('Pad', ['b', 'p2'], ['y'], { mode: 'edge' }),
  ], x4, { p1: ints([8], [0, 1, 1, 0, 0, 0, 2, 1]), v: floats([], [0.75]), p2: ints([8], [0, 0, 2, 1, 0, 0, 1, 2]) }),
  c('MaxPool ceil_mode, pads, dilation', node('MaxPool', ['x'], ['y'], { kernel_shape: [3, 2], strides: [2, 2], pads: [1, 0, 1, 1], ceil_mode: 1, dilations: [1, 2] }), x4),
  c('AveragePool count_include_pad', node('AveragePool', ['x'], ['y'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 1 }), x4),
  c('AveragePool excluding pads', node('AveragePool', ['x'], ['y'], { kernel_shape: [2, 3], pads: [0, 1, 1, 1] }), x4),
  c('GlobalAveragePool and GlobalMaxPool', [node('GlobalAveragePool', ['x'], ['a']), node('GlobalMaxPool', ['x'], ['b']), node('Add', ['a', 'b'], ['y'])], x4),
  c('Resize nearest (sizes)', node('Resize', ['x', '', '', 'sz'], ['y'], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }), x4, { sz: ints([4], [1, 3, 13, 10]) }),
  c('Resize linear half_pixel', node('Resize', ['x', '', 'sc'], ['y'], { mode: 'linear' }), x4, { sc: floats([4], [1, 1, 2, 1.5]) }),
  c('Resize linear align_corners down', node('Resize', ['x', '', 'sc'], ['y'], { mode: 'linear', coordinate_transformation_mode: 'align_corners' }), x4, { sc: floats([4], [1, 1, 0.5, 0.6]) }),
  c('Upsample nearest (9)', node('Upsample', ['x', 'sc'], ['y'], { mode: 'nearest' }), x4, { sc: floats([4], [1, 1, 2, 3]) }, 9),
  c('Upsample linear (9)', node('Upsample', ['x', 'sc'], ['y'], { mode: 'linear' }), x4, { sc: floats([4], [1, 1, 2, 2]) }, 9),
  c('BatchNormalization standalone', node('BatchNormalization', ['x', 'g', 'b', 'm', 'v'], ['y'], { epsilon: 0.01 }), x4,
    { g: randomTensor([3], 17), b: randomTensor([3], 18), m: randomTensor([3], 19), v: randomTensor([3], 20, 0.1, 2) }),
  c('ReduceMean/Max/Sum', [node('ReduceMean', ['x'], ['a'], { axes: [2, 3] }), node('ReduceMax', ['x'], ['b'], { axes: [1], keepdims: 1 }),
    node('ReduceSum', ['b', 'ax'], ['s'], { keepdims: 0 }), node('Mul', ['a', 's'], ['y'])], x4, { ax: ints([1], [3]) }),
  c('ReduceMin', node('ReduceMin', ['x'], ['y'], { axes: [-1], keepdims: 0 }), x4),
  c('Cast round trip', [node('Cast', ['x'], ['i'], { to: 6 }), node('Cast', ['i'], ['y'], { to: 1 })], x4, {}, 13, [-5, 5]),
  c('Shape/Gather/ConstantOfShape/Expand/Range chain', [
    node('Shape', ['x'], ['s']), node('Gather', ['s', 'i'], ['g'], { axis: 0 }), node('Range', ['zero', 'g', 'one'], ['r']),
    node('Cast', ['r'], ['rf'], { to: 1 }), node('Expand', ['rf', 's'], ['e']), node('ConstantOfShape', ['s'], ['co'], { value: floats([1], [0.5]) }),
    node('Add', ['x', 'e'], ['xe']), node('Mul', ['xe', 'co'], ['y']),
  ], x4, { i: ints([], [3]), zero: ints([], [0]), one: ints([], [1]) }),
  c('Gather runtime data', node('Gather', ['x', 'i'], ['y'], { axis: 2 }), x4, { i: ints([2, 2], [5, -1, 0, 2]) }),
  c('Constant, Identity, Dropout, Where, Equal, Greater, Less, Not', [
    node('Constant', [], ['k'], { value: randomTensor([7], 21) }), node('Identity', ['x'], ['xi']), node('Dropout', ['xi'], ['d']),
    node('Greater', ['d', 'k'], ['gt']), node('Less', ['d', 'k'], ['lt']), node('Equal', ['gt', 'lt'], ['eq']), node('Not', ['eq'], ['ne']),
    node('Where', ['ne', 'd', 'k'], ['y']),
  ], x4),
];

test('every supported op has a case here', () => {
  const covered = new Set(CASES.flatMap((k) => k.nodes.map((n) => n.op)));
  const exempt = ['QuantizeLinear', 'DequantizeLinear', 'QLinearConv', 'QLinearMatMul', 'com.microsoft:QLinearAdd', 'com.microsoft:QLinearGlobalAveragePool', 'GreaterOrEqual', 'LessOrEqual'];
  const missing = supportedOps().filter((op) => !covered.has(op) && !exempt.includes(op));
  assert.equal(missing, [], 'ops without a case (the QLinear ops are held bit-exact to onnxruntime on mobilenetv2-12-int8 in float-parity)');
});

for (const k of CASES) {
  test(`op ${k.name}: shapes and values equal onnxruntime`, async () => {
    const inputs = Object.entries(k.inputs).map(([name, dims]) => ({ name, dims }));
    const outNames = [k.nodes.at(-1)!.outputs.at(-1)!];
    const bytes = buildModel({ inputs, outputs: outNames.map((name) => ({ name })), nodes: k.nodes, initializers: k.initializers, opset: k.opset });
    const feeds = Object.fromEntries(inputs.map(({ name, dims }, i) => [name, { data: randomArray(dims.reduce((a, b) => a * b, 1), 100 + i, ...(k.range ?? [-2, 2])), dims }]));
    const ref = await ortRun(bytes, feeds);
    const model = await loadModel(bytes);
    const ours = await model.run(Object.fromEntries(Object.entries(feeds).map(([n, f]) => [n, f.data])));
    for (const o of outNames) {
      const d = diff(ours[o], ref[o]);
      assert.ok(d.max <= 1e-5 * Math.max(1, d.ref), `${o}: max diff ${d.max} (max |ref| ${d.ref})`);
    }
  });
}

test.run();

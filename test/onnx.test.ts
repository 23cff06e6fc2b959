import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { calibrate, loadModel, P2Error } from '../sdk/index.js';
import { inspectModel } from '../sdk/inspect.js';
import { decodeModel } from '../sdk/onnx/decode.js';
import { encodeModel } from '../sdk/onnx/encode.js';
import { upgradeOpset } from '../sdk/onnx/opset.js';
import { ModelProto } from '../sdk/onnx/schema.js';
import { prepareGraph } from '../sdk/model.js';
import { resolveInputShapes } from '../sdk/passes/infer.js';
import {
  SHARED_MODELS, assetTest, buildModel, diff, floats, ints, node, ortRun, randomArray, randomTensor, readModel,
} from './helpers.js';

async function rejects(p: Promise<unknown> | (() => unknown), code: string, pattern?: RegExp) {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.instance(e, P2Error, `expected a P2Error, got ${e}`);
    assert.is((e as P2Error).code, code, (e as Error).message);
    if (pattern) assert.match((e as Error).message, pattern);
    return (e as Error).message;
  }
  assert.unreachable(`expected a ${code} error`);
}

for (const { file, shape } of SHARED_MODELS) {
  assetTest(test, `shared model ${file}: inspect reports no unsupported ops and infers output shapes`, async () => {
    const r = await inspectModel(readModel(file), { inputShape: shape });
    assert.equal(r.unsupported, []);
    assert.ok(r.outputs.every((o) => o.shape.every((d) => typeof d === 'number' && d > 0)));
    assert.ok(r.params > 100_000, `params ${r.params}`);
    assert.ok((r.arenaBytes ?? 0) > 0);
  });

  assetTest(test, `shared model ${file}: decode -> encode -> onnxruntime gives identical outputs`, async () => {
    const bytes = readModel(file);
    const rewritten = encodeModel(decodeModel(bytes));
    const model = await loadModel(bytes, { inputShape: shape });
    const x = randomArray(shape.reduce((a, b) => a * b, 1), 7);
    const feeds = { [model.inputs[0].name]: { data: x, dims: shape } };
    const [a, b] = [await ortRun(bytes, feeds), await ortRun(rewritten, feeds)];
    for (const k of Object.keys(a)) assert.equal(diff(b[k], a[k]).max, 0, `output ${k} differs`);
  });
}

assetTest(test, 'prepared graphs (folded constants and BatchNorm) still run in onnxruntime with the same outputs', async () => {
  for (const { file, shape } of SHARED_MODELS.filter((m) => !m.file.includes('int8'))) {
    const bytes = readModel(file);
    const source = decodeModel(bytes);
    const { graph } = prepareGraph(source, resolveInputShapes(source, shape));
    assert.ok(graph.nodes.every((n) => !['BatchNormalization', 'Shape', 'Gather', 'Constant', 'Identity'].includes(n.op)), file);
    const x = randomArray(shape.reduce((a, b) => a * b, 1), 3);
    const feeds = { [source.inputs[0].name]: { data: x, dims: shape } };
    const [a, b] = [await ortRun(bytes, feeds), await ortRun(encodeModel(graph), feeds)];
    for (const k of Object.keys(a)) {
      const d = diff(b[k], a[k]);
      assert.ok(d.max <= 1e-4 * d.ref, `${file} ${k}: ${d.max} vs ${d.ref}`);
    }
  }
});

assetTest(test, 'prepared graphs of the OCR and low-light models (BatchNorm as Mul and Add, ConvTranspose bias Adds folded) run in onnxruntime with the same outputs', async () => {
  const models: [string, number[]][] = [['ppocrv4-det.onnx', [1, 3, 96, 128]], ['ppocrv4-rec.onnx', [1, 3, 48, 160]], ['tbefn-180x320.onnx', [1, 3, 180, 320]]];
  for (const [file, shape] of models) {
    const bytes = readModel(file);
    const source = decodeModel(bytes);
    const { graph, inferred } = prepareGraph(source, resolveInputShapes(source, [...shape]));
    assert.ok(graph.nodes.length <= source.nodes.length, file);
    upgradeOpset(graph, 14, (t) => inferred.values.get(t)?.shape.length ?? 0); // HardSwish is opset 14
    const x = randomArray(shape.reduce((a, b) => a * b, 1), 3);
    const feeds = { [source.inputs[0].name]: { data: x, dims: [...shape] } };
    const [a, b] = [await ortRun(bytes, feeds), await ortRun(encodeModel(graph), feeds)];
    for (const k of Object.keys(a)) {
      const d = diff(b[k], a[k]);
      // Probabilities: within 1e-4 of the largest, or of 1 when all are tiny (a Sigmoid far out).
      assert.ok(d.max <= 1e-4 * Math.max(d.ref, 1), `${file} ${k}: ${d.max} vs ${d.ref}`);
    }
  }
});

test('per-channel constant Muls and Adds after a Conv, and bias Adds after a ConvTranspose, fold into the layer', async () => {
  const bytes = buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 5, 5] }],
    outputs: [{ name: 'y' }, { name: 'u' }],
    nodes: [
      node('Conv', ['x', 'w', 'cb'], ['c'], { pads: [1, 1, 1, 1] }),
      node('Mul', ['c', 's'], ['m']),
      node('Add', ['k', 'm'], ['y']),
      node('ConvTranspose', ['y', 'wt'], ['t'], { strides: [2, 2] }),
      node('Mul', ['t', 'half'], ['th']),
      node('Add', ['th', 'tb'], ['u']),
    ],
    initializers: {
      w: randomTensor([4, 3, 3, 3], 1), cb: randomTensor([4], 2), s: randomTensor([1, 4, 1, 1], 3, -2, 2), k: randomTensor([4, 1, 1], 4),
      wt: randomTensor([4, 2, 2, 2], 5), half: floats([], [0.5]), tb: randomTensor([1, 2, 1, 1], 6),
    },
  });
  const model = await loadModel(bytes);
  assert.equal(model.graph.nodes.map((n) => n.op), ['Conv', 'ConvTranspose']);
  const x = randomArray(75, 7);
  const ours = await model.run(x);
  const ref = await ortRun(bytes, { x: { data: x, dims: [1, 3, 5, 5] } });
  for (const k of ['y', 'u']) {
    const d = diff(ours[k], ref[k]);
    assert.ok(d.max <= 1e-5 * Math.max(1, d.ref), `${k}: ${d.max}`);
  }
});

test('not ONNX: empty file, random bytes, a valid protobuf that is not a model', async () => {
  await rejects(loadModel(new Uint8Array(0)), 'NOT_ONNX', /empty/);
  const noise = Uint8Array.from(randomArray(4096, 1, 0, 256), (v) => Math.floor(v));
  try {
    await loadModel(noise);
    assert.unreachable('random bytes must not load');
  } catch (e) {
    assert.instance(e, P2Error);
    assert.ok(['NOT_ONNX', 'TRUNCATED'].includes((e as P2Error).code));
  }
  const other = ModelProto.encode(ModelProto.fromObject({ producer_name: 'x' })).finish();
  await rejects(loadModel(other), 'NOT_ONNX', /no ir_version or no graph/);
});

assetTest(test, 'a truncated model is reported as truncated', async () => {
  const bytes = readModel('yolox-nano.onnx');
  await rejects(loadModel(bytes.subarray(0, Math.floor(bytes.length / 2))), 'TRUNCATED', /truncated/);
});

const relu = (opset = 13) => ({
  inputs: [{ name: 'x', dims: [1, 4] }],
  outputs: [{ name: 'y', dims: [1, 4] }],
  nodes: [node('Relu', ['x'], ['y'])],
  opset,
});

test('dynamic input dims need a shape; the error names the input and its dims', async () => {
  const m = buildModel({ ...relu(), inputs: [{ name: 'x', dims: ['batch', 4] }] });
  await rejects(loadModel(m), 'SHAPE', /input "x" has dynamic dims \[batch,4\]/);
  const model = await loadModel(m, { inputShape: [2, 4] });
  assert.equal(model.inputs[0].shape, [2, 4]);
  await rejects(loadModel(m, { inputShape: [2, 5] }), 'SHAPE', /does not fit/);
  await rejects(loadModel(m, { inputShape: { nope: [1, 4] } }), 'SHAPE', /"nope"/);
});

test('unsupported ops are all listed with their node names in one message', async () => {
  const m = buildModel({
    inputs: [{ name: 'x', dims: [1, 4] }],
    outputs: [{ name: 'z', dims: [1, 4] }],
    nodes: [node('Frobnicate', ['x'], ['y']), node('Relu', ['y'], ['r']), node('Zap', ['r'], ['z'], {}, 'com.acme')],
  });
  await rejects(loadModel(m), 'UNSUPPORTED', /Frobnicate \(node "Frobnicate_y"\), com\.acme:Zap \(node "Zap_z"\)/);
  const r = await inspectModel(m);
  assert.equal(r.unsupported, [{ op: 'Frobnicate', node: 'Frobnicate_y' }, { op: 'com.acme:Zap', node: 'Zap_z' }]);
});

test('cycles and tensors nobody produces are named', async () => {
  const cyc = buildModel({
    inputs: [{ name: 'x', dims: [1, 4] }],
    outputs: [{ name: 'b', dims: [1, 4] }],
    nodes: [node('Add', ['x', 'b'], ['a']), node('Relu', ['a'], ['b'])],
  });
  await rejects(loadModel(cyc), 'BAD_MODEL', /cycle through nodes "Add_a", "Relu_b"/);
  const dangling = buildModel({ ...relu(), nodes: [node('Add', ['x', 'ghost'], ['y'])] });
  await rejects(loadModel(dangling), 'BAD_MODEL', /reads tensor "ghost"/);
});

test('tensor payloads: typed fields, raw_data, float16, float64, int32; wrong sizes are refused', async () => {
  // A Mul by a constant given in every encoding must give the same result.
  const x = floats([1, 4], [1, 2, 3, 4]);
  const scale = [0.5, -2, 4, 1.25];
  const encodings: Record<string, unknown> = {
    float_data: { dims: [4], data_type: 1, float_data: scale },
    raw_float: { dims: [4], data_type: 1, raw_data: new Uint8Array(Float32Array.from(scale).buffer) },
    double: { dims: [4], data_type: 11, double_data: scale },
    float16: { dims: [4], data_type: 10, int32_data: [0x3800, 0xc000, 0x4400, 0x3d00] },
    float16_raw: { dims: [4], data_type: 10, raw_data: new Uint8Array(Uint16Array.from([0x3800, 0xc000, 0x4400, 0x3d00]).buffer) },
  };
  for (const [name, t] of Object.entries(encodings)) {
    const proto = ModelProto.fromObject({
      ir_version: 7,
      opset_import: [{ domain: '', version: 13 }],
      graph: {
        name: 'g',
        node: [{ op_type: 'Mul', input: ['x', 's'], output: ['y'] }],
        initializer: [{ name: 's', ...(t as object) }],
        input: [{ name: 'x', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 1 }, { dim_value: 4 }] } } } }],
        output: [{ name: 'y', type: { tensor_type: { elem_type: 1 } } }],
      },
    });
    const model = await loadModel(ModelProto.encode(proto).finish());
    const y = (await model.run(x.data as Float32Array)).y;
    assert.equal(Array.from(y), [0.5, -4, 12, 5], name);
  }
  const bad = ModelProto.encode(ModelProto.fromObject({
    ir_version: 7, opset_import: [{ version: 13 }],
    graph: { node: [{ op_type: 'Relu', input: ['x'], output: ['y'] }], initializer: [{ name: 'w', dims: [1000], data_type: 1, raw_data: new Uint8Array(12) }],
      input: [{ name: 'x', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 1 }] } } } }], output: [{ name: 'y' }] },
  })).finish();
  await rejects(loadModel(bad), 'BAD_MODEL', /raw_data holds 12 bytes but its dims need 4000/);
});

test('external data: resolved by the caller, a clear error when missing', async () => {
  const w = Float32Array.from([1, 2, 3, 4]);
  const proto = (location: string) => ModelProto.encode(ModelProto.fromObject({
    ir_version: 8, opset_import: [{ version: 13 }],
    graph: {
      node: [{ op_type: 'Add', input: ['x', 'w'], output: ['y'] }],
      initializer: [{ name: 'w', dims: [4], data_type: 1, data_location: 1, external_data: [{ key: 'location', value: location }, { key: 'offset', value: '16' }] }],
      input: [{ name: 'x', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 4 }] } } } }],
      output: [{ name: 'y' }],
    },
  })).finish();
  await rejects(loadModel(proto('weights.bin')), 'EXTERNAL_DATA', /external file "weights.bin"/);
  const file = new Uint8Array(32);
  file.set(new Uint8Array(w.buffer), 16);
  const model = await loadModel(proto('weights.bin'), { externalData: (loc) => (loc === 'weights.bin' ? file : undefined) });
  assert.equal(Array.from((await model.run(new Float32Array(4))).y), [1, 2, 3, 4]);
});

test('opset range: too old and too new opsets are refused with the supported range', async () => {
  await rejects(loadModel(buildModel(relu(5))), 'UNSUPPORTED', /opset 5; p2calib reads opsets 7 to 22/);
  await rejects(loadModel(buildModel(relu(40))), 'UNSUPPORTED', /opset 40/);
});

test('PyTorch-style shape chain (Shape/Gather/Unsqueeze/Concat -> Reshape) is folded to a constant', async () => {
  const spec = {
    inputs: [{ name: 'x', dims: ['n', 2, 3] }],
    outputs: [{ name: 'y', dims: ['n', 6] }],
    nodes: [
      node('Shape', ['x'], ['s']),
      node('Gather', ['s', 'zero'], ['n0'], { axis: 0 }),
      node('Unsqueeze', ['n0', 'axes0'], ['n1']),
      node('Concat', ['n1', 'minus1'], ['shape'], { axis: 0 }),
      node('Reshape', ['x', 'shape'], ['y']),
    ],
    initializers: { zero: ints([], [0]), axes0: ints([1], [0]), minus1: ints([1], [-1]) },
  };
  const model = await loadModel(buildModel(spec), { inputShape: [2, 2, 3] });
  assert.equal(model.graph.nodes.map((n) => n.op), ['Reshape']);
  assert.equal(model.outputs[0].shape, [2, 6]);
  const x = randomArray(12, 5);
  assert.equal(Array.from((await model.run(x)).y), Array.from(x));
});

test('Identity/Dropout removal, BatchNorm folding into Conv and Gemm, a standalone BN becomes a depthwise 1x1 Conv', async () => {
  const spec = {
    inputs: [{ name: 'x', dims: [1, 3, 5, 5] }],
    outputs: [{ name: 'out', dims: [1, 4] }, { name: 'side', dims: [1, 3, 5, 5] }],
    nodes: [
      node('Identity', ['x'], ['xi']),
      node('BatchNormalization', ['xi', 'g0', 'b0', 'm0', 'v0'], ['side'], { epsilon: 1e-3 }),
      node('Conv', ['xi', 'w', 'cb'], ['c'], { pads: [1, 1, 1, 1] }),
      node('BatchNormalization', ['c', 'g', 'b', 'm', 'v'], ['bn']),
      node('Dropout', ['bn'], ['d']),
      node('GlobalAveragePool', ['d'], ['p']),
      node('Flatten', ['p'], ['f']),
      node('Gemm', ['f', 'fw', 'fb'], ['gm'], { transB: 1, alpha: 0.5, beta: { float: 2 } }),
      node('BatchNormalization', ['gm', 'g2', 'b2', 'm2', 'v2'], ['out']),
    ],
    initializers: {
      g0: randomTensor([3], 1, 0.5, 2), b0: randomTensor([3], 2), m0: randomTensor([3], 3), v0: randomTensor([3], 4, 0.1, 1),
      w: randomTensor([6, 3, 3, 3], 5), cb: randomTensor([6], 6),
      g: randomTensor([6], 7, 0.5, 2), b: randomTensor([6], 8), m: randomTensor([6], 9), v: randomTensor([6], 10, 0.1, 1),
      fw: randomTensor([4, 6], 11), fb: randomTensor([4], 12),
      g2: randomTensor([4], 13, 0.5, 2), b2: randomTensor([4], 14), m2: randomTensor([4], 15), v2: randomTensor([4], 16, 0.1, 1),
    },
  };
  const bytes = buildModel(spec);
  const model = await loadModel(bytes);
  assert.equal(model.graph.nodes.map((n) => n.op), ['Conv', 'Conv', 'GlobalAveragePool', 'Flatten', 'Gemm']);
  assert.equal(model.graph.nodes[0].attrs.group, { type: 'int', value: 3 });
  const x = randomArray(75, 17);
  const ours = await model.run(x);
  const ref = await ortRun(bytes, { x: { data: x, dims: [1, 3, 5, 5] } });
  for (const k of ['out', 'side']) {
    const d = diff(ours[k], ref[k]);
    assert.ok(d.max <= 1e-5 * Math.max(1, d.ref), `${k}: ${d.max}`);
  }
});

test('channel-wise constant Mul/Add/Sub become the depthwise 1x1 layer the device runs, with the same float bits', async () => {
  const spec = {
    inputs: [{ name: 'x', dims: [1, 4, 3, 5] }, { name: 't', dims: [1, 4, 6] }],
    outputs: [{ name: 'y', dims: [1, 4, 3, 5] }, { name: 'z', dims: [1, 4, 3, 5] }, { name: 'u', dims: [1, 4, 6] }, { name: 'v', dims: [1, 4, 6] }],
    nodes: [
      node('Relu', ['x'], ['r']),
      // x*s + b (one layer), c - x: per-channel and scalar constants, an operand on either side
      node('Mul', ['s', 'r'], ['m']), node('Add', ['m', 'b'], ['y']),
      node('Sub', ['k', 'r'], ['z']),
      // rank 3 (one spatial axis); a constant along the last axis is not per channel and stays
      node('Sub', ['t', 'k'], ['u']), node('Mul', ['t', 'last'], ['v']),
    ],
    initializers: {
      s: randomTensor([4, 1, 1], 1, 0.1, 3), b: randomTensor([1, 4, 1, 1], 2), k: floats([], [0.7]), last: randomTensor([6], 3),
    },
  };
  const bytes = buildModel(spec);
  const model = await loadModel(bytes);
  assert.equal(model.graph.nodes.map((n) => `${n.op}:${n.outputs[0]}`), ['Relu:r', 'Conv:y', 'Conv:z', 'Conv:u', 'Mul:v']);
  const x = randomArray(60, 4, -2, 2), t = randomArray(24, 5, -2, 2);
  const ours = await model.run({ x, t });
  const ref = await ortRun(bytes, { x: { data: x, dims: [1, 4, 3, 5] }, t: { data: t, dims: [1, 4, 6] } });
  for (const k of ['y', 'z', 'u', 'v']) assert.equal(Array.from(ours[k]), Array.from(ref[k]), k);
  // In fixed point they are layers with integer weights, not float fallback.
  const cal = await calibrate(model, [{ x, t }], { preset: 'advanced-dw' });
  assert.equal((await cal.fixedPlan(1)).fallbacks, ['Mul_v']);
});

test('hard-sigmoid and hard-swish decompositions are recognised as single ops', async () => {
  const three = floats([], [3]);
  const zero = floats([], [0]);
  const six = floats([], [6]);
  const spec = {
    inputs: [{ name: 'x', dims: [1, 8] }],
    outputs: [{ name: 'y', dims: [1, 8] }, { name: 'z', dims: [1, 8] }, { name: 'h', dims: [1, 8] }],
    nodes: [
      // hard-swish as x * relu6(x + 3) / 6 (old PyTorch export)
      node('Add', ['x', 'three'], ['a']), node('Clip', ['a', 'zero', 'six'], ['c']),
      node('Mul', ['x', 'c'], ['mx']), node('Div', ['mx', 'six'], ['y']),
      // hard-sigmoid as relu6(x + 3) / 6, then times x
      node('Add', ['y', 'three'], ['a2']), node('Clip', ['a2', 'zero', 'six'], ['c2']), node('Div', ['c2', 'six'], ['hs']),
      node('Mul', ['y', 'hs'], ['z']),
      // a lone hard-sigmoid
      node('Add', ['z', 'three'], ['a3']), node('Clip', ['a3', 'zero', 'six'], ['c3']), node('Div', ['c3', 'six'], ['h']),
    ],
    initializers: { three, zero, six },
  };
  const bytes = buildModel(spec);
  const model = await loadModel(bytes);
  assert.equal(model.graph.nodes.map((n) => n.op), ['HardSwish', 'HardSwish', 'HardSigmoid']);
  const x = randomArray(8, 3, -5, 5);
  const ours = await model.run(x);
  const ref = await ortRun(bytes, { x: { data: x, dims: [1, 8] } });
  for (const k of ['y', 'z', 'h']) assert.ok(diff(ours[k], ref[k]).max < 1e-6, k);
});

test('initializers listed as graph inputs (old PyTorch exports) are not runtime inputs; Constant-node weights work', async () => {
  const proto = ModelProto.encode(ModelProto.fromObject({
    ir_version: 3, opset_import: [{ version: 9 }],
    graph: {
      node: [
        { op_type: 'Constant', output: ['k'], attribute: [{ name: 'value', type: 4, t: { dims: [2], data_type: 1, float_data: [2, 3] } }] },
        { op_type: 'Mul', input: ['x', 'k'], output: ['m'] },
        { op_type: 'Add', input: ['m', 'w'], output: ['y'] },
      ],
      initializer: [{ name: 'w', dims: [2], data_type: 1, float_data: [10, 20] }],
      input: [
        { name: 'x', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 2 }] } } } },
        { name: 'w', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 2 }] } } } },
      ],
      output: [{ name: 'y' }],
    },
  })).finish();
  const model = await loadModel(proto);
  assert.equal(model.inputs.map((i) => i.name), ['x']);
  assert.equal(Array.from((await model.run(Float32Array.from([1, 1]))).y), [12, 23]);
});

test.run();

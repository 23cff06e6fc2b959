/**
 * Bad models through the SDK: every case of test/bad-models.ts gives a P2Error with its code and
 * a one-line message naming the problem, from decodeModel / loadModel / inspectModel alike; every
 * truncation of a model is a typed error; very large graphs load in about linear time.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { P2Error } from '../sdk/errors.js';
import { inspectModel } from '../sdk/inspect.js';
import { loadModel } from '../sdk/model.js';
import { readFileOrFail, readModelFile } from '../sdk/node/files.js';
import { decodeModel } from '../sdk/onnx/decode.js';
import { BAD_MODELS, proto, valueInfo } from './bad-models.js';
import { buildModel, floats, node, randomTensor } from './helpers.js';

async function typedError(f: () => unknown): Promise<P2Error | undefined> {
  try {
    await f();
    return undefined;
  } catch (e) {
    if (!(e instanceof P2Error)) throw new Error(`expected a P2Error, got ${(e as Error)?.stack ?? e}`);
    assert.not.match(e.message, /\n/, 'one line');
    return e;
  }
}

async function rejects(f: () => unknown, code: string, message: RegExp): Promise<void> {
  const e = await typedError(f);
  assert.ok(e, `expected a ${code} error`);
  assert.is(e.code, code, e.message);
  assert.match(e.message, message);
}

for (const bad of BAD_MODELS) {
  test(`${bad.name}: ${bad.code} from loadModel and inspectModel`, async () => {
    const bytes = bad.bytes();
    if (bad.reported) assert.ok((await inspectModel(bytes)).unsupported.length > 0, 'inspect lists unsupported ops');
    else await rejects(() => inspectModel(bytes), bad.code, bad.message);
    // loadModel stops before planning memory: the arena case loads, the rest fail the same way.
    if (/arena/.test(bad.name)) return;
    await rejects(() => loadModel(bytes), bad.code, bad.message);
  });
}

test('every truncation of a model is a typed error or a smaller valid model', async () => {
  const bytes = buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 8, 8] }], outputs: [{ name: 'y' }],
    nodes: [node('Conv', ['x', 'w', 'b'], ['c'], { pads: [1, 1, 1, 1] }), node('Relu', ['c'], ['r']), node('GlobalAveragePool', ['r'], ['y'])],
    initializers: { w: randomTensor([4, 3, 3, 3], 1), b: randomTensor([4], 2) },
  });
  const codes = new Set<string>();
  for (let n = 0; n < bytes.length; n++) {
    const e = await typedError(() => loadModel(bytes.subarray(0, n)));
    codes.add(e?.code ?? 'ok');
  }
  assert.ok(codes.has('TRUNCATED') && codes.has('NOT_ONNX'), [...codes].join());
});

test('a typeless attribute (IR v1) without a value is ignored, with a value its type is inferred', async () => {
  const graph = (attribute: object) => ({
    node: [{ op_type: 'Softmax', input: ['x'], output: ['y'], attribute: [attribute] }],
    input: [valueInfo('x', [2, 3])], output: [valueInfo('y', [2, 3])],
  });
  const none = decodeModel(proto(graph({ name: 'axis' }), { ir_version: 1 }));
  assert.equal(none.nodes[0].attrs, {});
  const model = await loadModel(proto(graph({ name: 'axis', i: 0 }), { ir_version: 1 }));
  assert.equal(model.graph.nodes[0].attrs.axis, { type: 'int', value: 0 });
  const y = (await model.run(Float32Array.from([0, 0, 0, 1, 1, 1]))).y;
  assert.ok(Math.abs(y[0] - 1 / (1 + Math.E)) < 1e-6, `softmax over axis 0: ${y}`);
});

test('a zero or an overflowing size in the given input shape is refused', async () => {
  const m = buildModel({ inputs: [{ name: 'x', dims: ['n', 'm'] }], outputs: [{ name: 'y' }], nodes: [node('Relu', ['x'], ['y'])] });
  await rejects(() => loadModel(m, { inputShape: [0, 4] }), 'SHAPE', /dimensions must be positive, got \[0,4\]/);
  await rejects(() => loadModel(m, { inputShape: [1e9, 1e9] }), 'TOO_LARGE', /input "x": \[1000000000,1000000000\]/);
});

test('files: devices, folders, external data outside the model folder or not a file', async () => {
  await rejects(() => readFileOrFail('/dev/zero', 'model file'), 'IO', /model file is not a regular file: \/dev\/zero/);
  const dir = mkdtempSync(join(tmpdir(), 'p2calib-ext-'));
  try {
    await rejects(() => readFileOrFail(dir, 'model file'), 'IO', /is a directory/);
    mkdirSync(join(dir, 'model'));
    mkdirSync(join(dir, 'model2'));
    mkdirSync(join(dir, 'model', 'weights.bin'));
    writeFileSync(join(dir, 'model2', 'w.bin'), new Uint8Array(16));
    writeFileSync(join(dir, 'model', 'ok.bin'), new Uint8Array(16));
    const withData = (location: string, offset = '0') => proto({
      node: [{ op_type: 'Add', input: ['x', 'w'], output: ['y'] }],
      initializer: [{ name: 'w', dims: [4], data_type: 1, data_location: 1, external_data: [{ key: 'location', value: location }, { key: 'offset', value: offset }] }],
      input: [valueInfo('x', [4])], output: [valueInfo('y', [4])],
    });
    const load = (location: string, offset?: string) => {
      writeFileSync(join(dir, 'model', 'm.onnx'), withData(location, offset));
      const { bytes, options } = readModelFile(join(dir, 'model', 'm.onnx'));
      return loadModel(bytes, options);
    };
    // A sibling folder whose name starts like the model's folder is still outside it.
    await rejects(() => load('../model2/w.bin'), 'EXTERNAL_DATA', /external file "..\/model2\/w.bin": external data file .*model2\/w.bin resolves to .*, outside .*model$/);
    await rejects(() => load('../nowhere/w.bin'), 'EXTERNAL_DATA', /external file "..\/nowhere\/w.bin", which was not found next to the model/);
    await rejects(() => load('weights.bin'), 'EXTERNAL_DATA', /external file "weights.bin"/);
    await rejects(() => load('ok.bin', '-8'), 'EXTERNAL_DATA', /invalid offset "-8"/);
    assert.equal(Array.from((await (await load('ok.bin')).run(floats([4], [1, 2, 3, 4]).data as Float32Array)).y), [1, 2, 3, 4]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('long messages are cut; names with control characters stay on one line', async () => {
  const nodes = Array.from({ length: 300 }, (_, i) => node('Frob', [i ? `t${i - 1}` : 'x'], [i === 299 ? 'y' : `t${i}`]));
  const e = await typedError(() => loadModel(buildModel({ inputs: [{ name: 'x', dims: [1, 4] }], outputs: [{ name: 'y' }], nodes })));
  assert.is(e?.code, 'UNSUPPORTED');
  assert.ok(e!.message.length <= 1000 && e!.message.endsWith('...'), e!.message);
});

/** A chain of `blocks` blocks exercising every load-time rewrite (identities, transpose pairs,
 *  hard-swish patterns, bias adds, activation fusion). */
function chain(blocks: number): Uint8Array {
  const nodes = [];
  let x = 'x';
  for (let i = 0; i < blocks; i++) {
    const t = (s: string) => `${s}${i}`;
    nodes.push(
      node('Identity', [x], [t('a')]),
      node('Transpose', [t('a')], [t('b')], { perm: [1, 0] }),
      node('Transpose', [t('b')], [t('c')], { perm: [1, 0] }),
      node('Add', [t('c'), 'three'], [t('d')]),
      node('Clip', [t('d'), 'zero', 'six'], [t('e')]),
      node('Div', [t('e'), 'six'], [t('f')]),
      node('Mul', [t('c'), t('f')], [t('g')]),
      node('Relu', [t('g')], [t('h')]),
      node('Add', [t('h'), 'bias'], [t('j')]),
    );
    x = t('j');
  }
  nodes.push(node('Identity', [x], ['y']));
  return buildModel({
    inputs: [{ name: 'x', dims: [1, 4] }], outputs: [{ name: 'y' }], nodes,
    initializers: { three: floats([], [3]), zero: floats([], [0]), six: floats([], [6]), bias: floats([1, 4], [1, 2, 3, 4]) },
  });
}

test('very large graphs: load, plan and run time grows about linearly with the node count', async () => {
  const time = async (blocks: number) => {
    const bytes = chain(blocks);
    const started = performance.now();
    const model = await loadModel(bytes);
    await model.arenaBytes();
    const y = (await model.run(Float32Array.from([1, 2, 3, 4]))).y;
    assert.ok(Math.abs(y[3] - 4 * (blocks + 1)) < 1e-3 * blocks, `${blocks} blocks: ${y}`);
    assert.equal([...new Set(model.graph.nodes.map((n) => n.op))].sort(), ['Add', 'HardSwish', 'Relu']);
    return performance.now() - started;
  };
  await time(200); // warm-up
  // The better of two runs each: the machine is shared, a pause must not pass for a trend.
  const small = Math.min(await time(2500), await time(2500));
  const large = Math.min(await time(10000), await time(10000)); // 90k nodes
  // Linear is 4x; the quadratic passes this replaced took 16x and more.
  assert.ok(large < 9 * small, `2500 blocks ${small.toFixed(0)} ms, 10000 blocks ${large.toFixed(0)} ms`);
});

test.run();

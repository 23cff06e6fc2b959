/**
 * TIDL trace files: names in both forms, writing every layer of a fixed-point run, comparing
 * folders (with themselves, with an altered byte, with missing, extra, malformed and
 * size-mismatched files), and the compare command's output and exit codes.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FixedPlan } from '../sdk/engine/fixed.js';
import { loadModel, type Model } from '../sdk/model.js';
import { readTraceDir, writeTraceDir } from '../sdk/node/traces.js';
import { captureTraces } from '../sdk/trace/capture.js';
import { compareTraces } from '../sdk/trace/compare.js';
import { parseLayerInfo, parseTraceName, traceDims, traceFiles, traceName, LAYER_INFO } from '../sdk/trace/format.js';
import { ROOT, assetTest, buildModel, floats, node, randomArray, rng } from './helpers.js';
import { mobileNetV2, naiveSpec } from './quant-helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'p2calib-trace-'));

/** A small network: conv+relu, depthwise conv+clip, a residual add, global pool, Gemm. */
async function smallModel(): Promise<Model> {
  const r = rng(3);
  const w = (dims: number[]) => floats(dims, Array.from({ length: dims.reduce((a, b) => a * b) }, () => r(-0.5, 0.5)));
  return loadModel(buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 12, 10] }],
    outputs: [{ name: 'y' }],
    nodes: [
      node('Conv', ['x', 'W1', 'B1'], ['c1'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }), node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'W2', 'B2'], ['c2'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], group: 8 }), node('Clip', ['c2', 'lo', 'hi'], ['r2']),
      node('Add', ['r1', 'r2'], ['s']), node('GlobalAveragePool', ['s'], ['g']), node('Flatten', ['g'], ['f']),
      node('Gemm', ['f', 'W3', 'B3'], ['y'], { transB: 1 }),
    ],
    initializers: {
      W1: w([8, 3, 3, 3]), B1: w([8]), W2: w([8, 1, 3, 3]), B2: w([8]), W3: w([5, 8]), B3: w([5]),
      lo: floats([], [0]), hi: floats([], [6]),
    },
  }));
}

async function writeRun(model: Model, feeds: Record<string, Float32Array>[], batchFeeds = feeds[0]): Promise<string> {
  const plan = await FixedPlan.create(model, model.inputs[0].shape[0], await naiveSpec(model, feeds));
  const dir = tmp();
  writeTraceDir(dir, traceFiles(captureTraces(plan, batchFeeds)), true);
  return dir;
}

/** Flip one bit of element `at` of the .y file with data id `dataId`; returns the file name. */
function alter(dir: string, dataId: number, at: number): string {
  const file = readdirSync(dir).find((f) => f.endsWith('.y') && parseTraceName(f)!.dataId === dataId)!;
  const bytes = readFileSync(join(dir, file));
  bytes[at] ^= 0x04;
  writeFileSync(join(dir, file), bytes);
  return file;
}

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('trace names: both forms parse, dims map NCHW from the right, malformed names do not', () => {
  const d = traceDims([1, 32, 112, 96]);
  assert.equal(d, { batch: 1, dim1: 1, dim2: 1, channels: 32, height: 112, width: 96 });
  const name = traceName('tidl_trace', 7, d);
  assert.is(name, 'tidl_trace0007_0001_0001_00001_00032_00096x00112.y');
  assert.equal(parseTraceName(name), { base: 'tidl_trace', dataId: 7, dims: d, form: 'long' });
  assert.equal(parseTraceName('tidl_trace_subgraph_0_0012_0002_00016_00007x00005.y'), {
    base: 'tidl_trace_subgraph_0_', dataId: 12, dims: { batch: 2, dim1: 1, dim2: 1, channels: 16, height: 5, width: 7 }, form: 'short',
  });
  assert.equal(traceDims([2, 1000]), { batch: 2, dim1: 1, dim2: 1, channels: 1, height: 1, width: 1000 });
  assert.equal(traceDims([1, 2, 3, 4, 5, 6, 7]), { batch: 1, dim1: 6, dim2: 4, channels: 5, height: 6, width: 7 });
  for (const bad of ['trace.y', 'tidl_trace0007_0001_00032_00096.y', 'tidl_trace0007_0001_0001_00001_00032_00096x00112.bin']) {
    assert.is(parseTraceName(bad), undefined, bad);
  }
});

test('traces of a small network: every layer written; compare with itself passes, an altered byte names its layer', async () => {
  const model = await smallModel();
  const feeds = [{ x: randomArray(360, 1, -2, 2) }, { x: randomArray(360, 2, -2, 2) }];
  const dir = await writeRun(model, feeds);
  const files = readTraceDir(dir);
  const info = parseLayerInfo(new TextDecoder().decode(files.get(LAYER_INFO)!));
  // Input, Conv+Relu, Conv+Clip, Add, GlobalAveragePool, Flatten, Gemm.
  assert.equal([...info.values()].map((i) => i.nodes), ['(input)', 'Conv_c1+Relu_r1', 'Conv_c2+Clip_r2', 'Add_s', 'GlobalAveragePool_g', 'Flatten_f', 'Gemm_y']);
  assert.equal([...info.values()].map((i) => i.tensor), ['x', 'r1', 'r2', 's', 'g', 'f', 'y']);
  assert.is([...files.keys()].filter((f) => f.endsWith('.y')).length, 7);
  assert.is([...files.keys()].filter((f) => f.endsWith('_float.bin')).length, 7);
  // The float twin is q / 2^scaleLog2 of the integers.
  const yName = [...files.keys()].find((f) => f.startsWith('tidl_trace0001'))!;
  const q = new Uint8Array(files.get(yName)!);
  const f = new Float32Array(files.get(yName.replace('.y', '_float.bin'))!.slice().buffer);
  const s = info.get(1)!.scaleLog2!;
  assert.ok(q.length === 8 * 120 && q.every((v, i) => f[i] === v * 2 ** -s));

  const same = compareTraces(files, readTraceDir(dir));
  assert.ok(same.match && same.layers.length === 7 && same.layers.every((l) => l.bitExact), JSON.stringify(same.problems));

  const copy = tmp();
  cpSync(dir, copy, { recursive: true });
  alter(copy, 3, 17);
  const diff = compareTraces(files, readTraceDir(copy));
  assert.not.ok(diff.match);
  assert.is(diff.firstMismatch!.dataId, 3);
  assert.is(diff.firstMismatch!.name, 'Add_s -> s');
  assert.equal([diff.firstMismatch!.mismatches, diff.firstMismatch!.firstMismatch, diff.firstMismatch!.maxAbsDiff], [1, 17, 4]);
  assert.is(diff.layers.filter((l) => !l.bitExact).length, 1);

  const text = cli('compare', dir, copy);
  assert.is(text.code, 1);
  assert.match(text.out, /first mismatching layer: 0003 Add_s -> s/);
  assert.match(text.out, /0003 Add_s -> s \[u?int8 1x1x1x8x12x10\]: 1 of 960 differ, max \|diff\| 4, first at 17/);
  const json = cli('compare', dir, dir, '--json');
  assert.is(json.code, 0);
  assert.ok(JSON.parse(json.out).match);
  rmSync(dir, { recursive: true });
  rmSync(copy, { recursive: true });
});

test('compare reports missing, extra, malformed and size-mismatched files; reads the short name form', async () => {
  const model = await smallModel();
  const dir = await writeRun(model, [{ x: randomArray(360, 4, -2, 2) }]);
  const names = readdirSync(dir).filter((f) => f.endsWith('.y')).sort();
  // The same traces under the older name form (no dim1/dim2) and another base compare equal.
  const short = tmp();
  for (const f of names) {
    const p = parseTraceName(f)!;
    const d = p.dims;
    const pad = (v: number, n: number) => String(v).padStart(n, '0');
    cpSync(join(dir, f), join(short, `dev_${pad(p.dataId, 4)}_${pad(d.batch, 4)}_${pad(d.channels, 5)}_${pad(d.width, 5)}x${pad(d.height, 5)}.y`));
  }
  const r0 = compareTraces(readTraceDir(dir), readTraceDir(short));
  assert.ok(r0.match, JSON.stringify(r0.problems));
  assert.is(r0.layers.length, names.length);

  const broken = tmp();
  cpSync(dir, broken, { recursive: true });
  unlinkSync(join(broken, names[2]));
  renameSync(join(broken, names[4]), join(broken, 'tidl_trace0004_oops.y'));
  writeFileSync(join(broken, 'tidl_trace0009_0001_0001_00001_00001_00002x00001.y'), new Uint8Array(2));
  const truncated = readFileSync(join(broken, names[1]));
  writeFileSync(join(broken, names[1]), truncated.subarray(0, truncated.length - 3));
  const r = compareTraces(readTraceDir(dir), readTraceDir(broken), ['ours', 'device']);
  assert.not.ok(r.match);
  const all = r.problems.join('\n');
  assert.match(all, /layer 2 \(Conv_c2\+Clip_r2 -> r2\): "tidl_trace0002_[^"]+" is in ours but missing in device/);
  assert.match(all, /device: malformed trace file name "tidl_trace0004_oops.y"/);
  assert.match(all, /layer 4 \([^)]*\): "tidl_trace0004_[^"]+" is in ours but missing in device/);
  assert.match(all, /layer 9 \(tidl_trace0009[^)]*\): "tidl_trace0009[^"]+" is in device but missing in ours/);
  assert.match(all, /device: "tidl_trace0001_[^"]+" has 957 bytes; its dims 1x1x1x8x12x10 need 960 \(8-bit\) or 1920 \(16-bit\)/);
  const out = cli('compare', dir, broken);
  assert.is(out.code, 1);
  assert.match(out.out, /problems:\n/);
  assert.match(out.out, /result: MISMATCH/);
  const missing = cli('compare', dir, join(broken, 'nope'));
  assert.is(missing.code, 2);
  assert.match(missing.err, /trace folder not found/);
  for (const d of [dir, short, broken]) rmSync(d, { recursive: true });
});

assetTest(test, 'MobileNetV2 traces: every layer written, self-compare passes, one altered byte is found in its layer', async () => {
  const { model, feeds, spec } = await mobileNetV2();
  const plan = await FixedPlan.create(model, 1, spec);
  const layers = captureTraces(plan, feeds[0]);
  assert.is(layers.length, plan.layers.length + 1);
  const dir = tmp();
  writeTraceDir(dir, traceFiles(layers), true);
  const a = readTraceDir(dir);
  assert.ok(compareTraces(a, a).match);
  const target = layers.find((l) => l.nodes[0]?.startsWith('Conv_10'))!;
  alter(dir, target.dataId, 1234);
  const r = compareTraces(a, readTraceDir(dir));
  assert.is(r.firstMismatch?.dataId, target.dataId);
  assert.is(r.firstMismatch?.name, `${target.nodes.join('+')} -> ${target.tensor}`);
  assert.is(r.layers.filter((l) => !l.bitExact).length, 1);
  rmSync(dir, { recursive: true });
});

test.run();

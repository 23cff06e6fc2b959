/**
 * p2calib simulate end to end: a calibration written by p2calib calibrate, one image, every
 * layer written as traces; simulate -> compare with itself passes, a copy with one altered byte
 * fails and names the layer; raw-pixel calibrations trace the pixels themselves.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { presetSpec } from '../sdk/data/preprocess.js';
import { loadImageTensor } from '../sdk/node/images.js';
import type { Graph } from '../sdk/graph/ir.js';
import { decodeModel } from '../sdk/onnx/decode.js';
import { encodeModel } from '../sdk/onnx/encode.js';
import { parseLayerInfo, parseTraceName } from '../sdk/trace/format.js';
import { MODELS, ROOT, assetTest, buildModel, floats, node, rng } from './helpers.js';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function ok(r: ReturnType<typeof cli>) {
  assert.is(r.code, 0, r.err || r.out);
  return r.out;
}

/** A folder of small random RGB images and a Conv/Relu/DW-Conv/Add/Pool/Gemm model file. */
async function fixture() {
  const dir = mkdtempSync(join(tmpdir(), 'p2calib-sim-'));
  const r = rng(11);
  mkdirSync(join(dir, 'images'));
  for (let i = 0; i < 3; i++) {
    const px = Buffer.from(Array.from({ length: 20 * 18 * 3 }, () => Math.floor(r(0, 256))));
    await sharp(px, { raw: { width: 20, height: 18, channels: 3 } }).png().toFile(join(dir, 'images', `img${i}.png`));
  }
  const w = (dims: number[]) => floats(dims, Array.from({ length: dims.reduce((a, b) => a * b) }, () => r(-0.5, 0.5)));
  writeFileSync(join(dir, 'model.onnx'), buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 16, 16] }],
    outputs: [{ name: 'y' }],
    nodes: [
      node('Conv', ['x', 'W1', 'B1'], ['c1'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] }), node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'W2', 'B2'], ['c2'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], group: 8 }), node('Relu', ['c2'], ['r2']),
      node('Add', ['r1', 'r2'], ['s']), node('GlobalAveragePool', ['s'], ['g']), node('Flatten', ['g'], ['f']),
      node('Gemm', ['f', 'W3', 'B3'], ['y'], { transB: 1 }),
    ],
    initializers: { W1: w([8, 3, 3, 3]), B1: w([8]), W2: w([8, 1, 3, 3]), B2: w([8]), W3: w([4, 8]), B3: w([4]) },
  }));
  return dir;
}

test('simulate -> compare: the same run matches, one altered byte is found and named; raw-pixel input is traced as pixels', async () => {
  const dir = await fixture();
  const model = join(dir, 'model.onnx');
  const image = join(dir, 'images', 'img1.png');
  const pre = ['--preprocess', 'imagenet', '--size', '16x16', '--short-side', '16'];
  for (const pixels of [false, true]) {
    const cal = join(dir, `cal-${pixels}`);
    ok(cli('calibrate', model, '--images', join(dir, 'images'), '--preset', 'simple', '--out', cal, ...pre, ...(pixels ? ['--pixel-input'] : [])));
    const [a, b] = [join(dir, `a-${pixels}`), join(dir, `b-${pixels}`)];
    const text = ok(cli('simulate', model, '--calibration', cal, '--image', image, '--trace-dir', a, ...pre));
    // Raw pixels add the preprocessing's affine map as the model's first layer.
    const layers = pixels ? 8 : 7;
    assert.match(text, new RegExp(`wrote ${layers} layer traces \\(${2 * layers + 1} files with the float twins and layer_info.txt\\)`));
    const json = JSON.parse(ok(cli('simulate', model, '--calibration', cal, '--image', image, '--trace-dir', b, '--json', ...pre)));
    assert.equal([json.layers, json.fallbacks], [layers, []]);
    assert.match(ok(cli('compare', a, b)), /result: MATCH/);

    const info = parseLayerInfo(readFileSync(join(a, 'layer_info.txt'), 'utf8'));
    if (pixels) {
      // The pixel model's input is the image's uint8 pixels, geometry applied, nothing else.
      const want = await loadImageTensor(image, { ...presetSpec('imagenet'), width: 16, height: 16, shortSide: 16, scale: 1, mean: [0, 0, 0], std: [1, 1, 1] });
      const file = readdirSync(a).find((f) => f.endsWith('.y') && parseTraceName(f)!.dataId === 0)!;
      assert.equal([info.get(0)!.type, info.get(0)!.scaleLog2], ['uint8', 0]);
      assert.equal(Array.from(readFileSync(join(a, file))), Array.from(want));
    }

    // Alter one element of the depthwise layer's trace.
    const dwId = [...info.values()].find((i) => i.nodes.startsWith('Conv_c2'))!.dataId;
    const file = readdirSync(b).find((f) => f.endsWith('.y') && parseTraceName(f)!.dataId === dwId)!;
    const bytes = readFileSync(join(b, file));
    bytes[5] ^= 1;
    writeFileSync(join(b, file), bytes);
    const diff = cli('compare', a, b);
    assert.is(diff.code, 1);
    assert.match(diff.out, new RegExp(`first mismatching layer: ${String(dwId).padStart(4, '0')} Conv_c2\\+Relu_r2 -> r2`));
    assert.match(diff.out, /1 of 512 differ, max \|diff\| 1, first at 5/);
    // Within one step it matches (and still lists the difference); bit-exact stays the default.
    const tol = cli('compare', a, b, '--tolerance', '1');
    assert.is(tol.code, 0, tol.out);
    assert.match(tol.out, /max \|diff\| 1 \(within 1\)/);
    assert.match(tol.out, /result: MATCH \(every layer within 1 step\)/);
    assert.is(JSON.parse(cli('compare', a, b, '--tolerance', '1', '--json').out).tolerance, 1);
    assert.match(cli('compare', a, b, '--tolerance', '-1').err, /p2calib: error: .*tolerance/);
  }
  const missing = cli('simulate', model, '--image', image, '--trace-dir', join(dir, 'x'));
  assert.is(missing.code, 2);
  assert.match(missing.err, /--calibration is required/);
  const notCal = cli('simulate', model, '--calibration', join(dir, 'images'), '--image', image, '--trace-dir', join(dir, 'x'), ...pre);
  assert.is(notCal.code, 2);
  assert.match(notCal.err, /no calibration.json in/);
  const taken = cli('simulate', model, '--calibration', join(dir, 'cal-false'), '--image', image, '--trace-dir', join(dir, 'a-false'), ...pre);
  assert.is(taken.code, 2);
  assert.match(taken.err, /--trace-dir .* is not empty \(.*\); pass --force/);
  rmSync(dir, { recursive: true });
});

test('calibrate --qdq-rounding device writes the QDQ model that rounds ties as the device; a bad value is one line', async () => {
  const dir = await fixture();
  const model = join(dir, 'model.onnx');
  const pre = ['--preprocess', 'imagenet', '--size', '16x16', '--short-side', '16'];
  const qdq = (rounding?: string) => {
    const out = join(dir, `cal-${rounding ?? 'default'}`);
    ok(cli('calibrate', model, '--images', join(dir, 'images'), '--preset', 'simple', '--out', out, ...pre, ...(rounding ? ['--qdq-rounding', rounding] : [])));
    return decodeModel(readFileSync(join(out, 'model.qdq.onnx')));
  };
  const [plain, onnx, device] = [qdq(), qdq('onnx'), qdq('device')];
  assert.equal(encodeModel(onnx), encodeModel(plain), 'onnx is the default');
  const biasScales = (g: Graph) => g.nodes.filter((n) => n.outputs[0].endsWith('_bias_dequantized')).map((n) => g.initializers.get(n.inputs[1])!.data[0]);
  assert.equal(biasScales(device), biasScales(plain).map((x) => x / 2));
  assert.ok(device.nodes.some((n) => n.name.endsWith('_TiesUp')), 'the residual Add rescales its inputs: its ties go up');
  const bad = cli('calibrate', model, '--images', join(dir, 'images'), '--out', join(dir, 'bad'), '--qdq-rounding', 'up', ...pre);
  assert.is(bad.code, 2);
  assert.match(bad.err.trim(), /^[^\n]*--qdq-rounding must be one of onnx, device[^\n]*$/);
  rmSync(dir, { recursive: true });
});

assetTest(test, 'simulate MobileNetV2 on a real image: 66 layers, self-compare matches', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'p2calib-sim-'));
  const images = join(ROOT, '../shared/assets/images/imagenet-sample');
  const some = join(dir, 'images');
  mkdirSync(some);
  for (const f of readdirSync(images).sort().slice(0, 2)) cpSync(join(images, f), join(some, f));
  const model = join(MODELS, 'mobilenetv2-12-fp32.onnx');
  ok(cli('calibrate', model, '--images', some, '--preset', 'simple', '--out', join(dir, 'cal')));
  const image = join(some, readdirSync(some)[0]);
  for (const t of ['a', 'b']) ok(cli('simulate', model, '--calibration', join(dir, 'cal'), '--image', image, '--trace-dir', join(dir, t)));
  const r = JSON.parse(cli('compare', join(dir, 'a'), join(dir, 'b'), '--json').out);
  assert.ok(r.match);
  assert.is(r.layers.length, 66);
  rmSync(dir, { recursive: true });
});

test.run();

/**
 * TIDL options in: edgeai-tidl-tools compile options as JSON, YAML and key = value map to the
 * calibration options (every key of the README table), other keys are named with a reason,
 * unsupported scale types are refused; nodes kept in float and 16-bit weights take effect in the
 * calibration, the fixed-point engine, the QDQ model and a reloaded calibration.json.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sdk from '../sdk/index.js';
import { decodeModel } from '../sdk/onnx/decode.js';
import { FixedPlan } from '../sdk/engine/fixed.js';
import { WasmRuntime } from '../sdk/engine/wasm.js';
import { runCli } from './cli-run.js';
import { rng, smallCnn } from './helpers.js';

const FULL = {
  tensor_bits: 16, accuracy_level: 9,
  'advanced_options:calibration_frames': 20, 'advanced_options:calibration_iterations': 3,
  'advanced_options:activation_clipping': 0, 'advanced_options:weight_clipping': 0, 'advanced_options:bias_calibration': 1,
  'advanced_options:channel_wise_quantization': 1, 'advanced_options:mixed_precision_factor': 1.5,
  'advanced_options:output_feature_16bit_names_list': 'conv1, conv2', 'advanced_options:params_16bit_names_list': 'fc',
  'advanced_options:quantization_scale_type': 1, deny_list: 'Sigmoid', 'deny_list:layer_name': 'Conv_c3',
  artifacts_folder: './out', debug_level: 3, made_up_key: 1,
};

test('TIDL options: JSON, nested advanced_options, model-zoo YAML and key = value give the same mapping', () => {
  const json = sdk.tidlConfig(JSON.stringify(FULL));
  const nested = sdk.tidlConfig(JSON.stringify({ tensor_bits: 16, accuracy_level: 9, advanced_options: { calibration_frames: 20, calibration_iterations: 3, activation_clipping: 0, weight_clipping: 0, bias_calibration: 1, channel_wise_quantization: 1, mixed_precision_factor: 1.5, output_feature_16bit_names_list: 'conv1, conv2', params_16bit_names_list: 'fc', quantization_scale_type: 1 }, deny_list: 'Sigmoid', 'deny_list:layer_name': 'Conv_c3', artifacts_folder: './out', debug_level: 3, made_up_key: 1 }));
  const yaml = sdk.tidlConfig(`task_type: classification\nsession:\n  session_name: onnxrt\n  runtime_options:\n${Object.entries(FULL).map(([k, v]) => `    ${k}: ${typeof v === 'string' ? `'${v}'` : v}`).join('\n')}\n`);
  const kv = sdk.tidlConfig(`# TIDL options\n${Object.entries(FULL).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`);
  for (const m of [nested, yaml, kv]) assert.equal(m.options, json.options);
  const o = json.options;
  assert.is(o.bits, 16);
  assert.is(o.preset, 'advanced');
  assert.equal(o.rules, { clipWeights: false, biasCalibration: true, perChannelDepthwise: true, estimator: { kind: 'minmax' } });
  assert.is(o.iterations, 3);
  assert.is(json.calibrationFrames, 20);
  assert.equal(o.mixedPrecision, { factor: 1.5 });
  assert.equal(o.sixteenBit, ['conv1', 'conv2']);
  assert.equal(o.sixteenBitWeights, ['fc']);
  assert.equal(o.floatNodes, ['Sigmoid', 'Conv_c3']);
  // One line per key, and the ignored ones say why.
  assert.is(json.notes.length, Object.keys(FULL).length);
  assert.ok(json.notes.some((n) => /^artifacts_folder = ".\/out": ignored: where TIDL writes/.test(n)));
  assert.ok(json.notes.some((n) => /^made_up_key = 1: ignored: not a TIDL compile option/.test(n)));
  assert.ok(json.notes.some((n) => /mixed_precision_factor = 1.5: .*chosen by measured sensitivity/.test(n)));
  assert.ok(json.notes.every((n) => !n.includes('\n')));
});

test('TIDL options: accuracy_level 0 and 1 are the simple and advanced presets; switches without level 9 are ignored; bad values refused', () => {
  assert.is(sdk.tidlConfig('accuracy_level = 0').options.preset, 'simple');
  const one = sdk.tidlConfig('{"accuracy_level": 1, "advanced_options:weight_clipping": 0}');
  assert.is(one.options.preset, 'advanced');
  assert.is(one.options.rules, undefined);
  assert.ok(one.notes.some((n) => /weight_clipping = 0: ignored: read by TIDL only with accuracy_level = 9/.test(n)));
  assert.ok(one.notes.some((n) => /quantization_scale_type \(absent/.test(n)));
  for (const [text, want] of [
    ['{"advanced_options:quantization_scale_type": 0}', /power-of-2 scales only \(quantization_scale_type 1\)/],
    ['{"advanced_options:quantization_scale_type": 4}', /quantization_scale_type = 4/],
    ['tensor_bits = 32', /float inference on the PC/],
    ['accuracy_level = 2', /accuracy_level: one of 0, 1, 9/],
    ['{"tensor_bits": 8,', /not valid JSON/],
    ['tensor_bits: [8', /not valid YAML/],
  ] as const) {
    try {
      sdk.tidlConfig(text);
      assert.unreachable(text);
    } catch (e) {
      assert.instance(e, sdk.P2Error);
      assert.match((e as Error).message, want);
      assert.not.match((e as Error).message, /\n/);
    }
  }
});

test('float nodes and 16-bit weights: calibrated, run, exported and reloaded as asked', async () => {
  const bytes = smallCnn();
  const m = await sdk.loadModel(bytes);
  const r = rng(9);
  const samples = Array.from({ length: 3 }, () => Float32Array.from({ length: 3 * 12 * 12 }, () => r(-1, 2)));
  const cal = await sdk.calibrate(m, samples, { floatNodes: ['Conv_c3', 'Sigmoid'], sixteenBitWeights: ['Gemm_y'] });
  const t = cal.table;
  assert.equal(t.floatNodes, ['Conv_c3', 'Sigmoid_gate']);
  assert.is(t.layers['Conv_c3'], undefined, 'no quantized weights for a float node');
  assert.is(t.layers['Gemm_y'].weightBits, 16);
  assert.is(t.tensors['y'].bits, 8, 'its output keeps 8 bits');
  assert.is(t.integers!['Conv_c3'].arithmetic, 'float fallback');
  assert.is(t.integers!['Gemm_y'].arithmetic, 'integer');
  // The QDQ model: the float conv keeps its float weights, the Sigmoid's output (read by no
  // quantized node) has no Q/DQ pair.
  const g = decodeModel(cal.toQdqOnnx());
  const conv = g.nodes.find((n) => n.name === 'Conv_c3')!;
  assert.ok(g.initializers.get(conv.inputs[1])?.dtype === 'float32', 'float weights');
  assert.not.ok(g.nodes.some((n) => n.op === 'QuantizeLinear' && n.outputs[0].startsWith('gate')), 'no Q/DQ on the float node\'s output');
  assert.ok(g.nodes.some((n) => n.op === 'QuantizeLinear' && n.outputs[0].startsWith('c3')), 'its output read by a quantized Add is quantized there');
  assert.not.match(cal.toTidlQuantParams(), /layer_name: "gate"/);
  // The 16-bit weights run the same in the kernels and the TypeScript reference.
  const ref = new FixedPlan(await WasmRuntime.create(), m.graph, m.inferred, cal.spec, { referenceOnly: true });
  assert.equal(Array.from((await cal.run(samples[0])).y), Array.from(ref.run({ x: samples[0] }).y));
  // Reloaded, the same calibration.
  const again = sdk.loadCalibration(m, JSON.parse(sdk.tableJson(t)));
  assert.equal(again.toQdqOnnx(), cal.toQdqOnnx());
});

test('CLI: --tidl-config prints one line per key, --config sets options, flags win over both; eval warns of shared images', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'p2calib-tidlcfg-'));
  try {
    const sharp = (await import('sharp')).default;
    const r = rng(3);
    for (let i = 0; i < 3; i++) {
      const px = Buffer.from(Array.from({ length: 16 * 16 * 3 }, () => Math.floor(r(0, 256))));
      await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(join(dir, `img${i}.png`));
    }
    writeFileSync(join(dir, 'm.onnx'), smallCnn());
    writeFileSync(join(dir, 'tidl.txt'), 'tensor_bits = 16\naccuracy_level = 0\nadvanced_options:calibration_frames = 2\nartifacts_folder = x\n');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ preset: 'advanced-dw', 'float-nodes': ['Sigmoid'], resize: 'fill' }));
    const res = await runCli(['calibrate', join(dir, 'm.onnx'), '--images', dir, '--out', join(dir, 'out'), '--tidl-config', join(dir, 'tidl.txt'),
      '--config', join(dir, 'config.json'), '--preprocess', 'imagenet', '--size', '12x12', '--workers', '1', '--json']);
    assert.is(res.code, 0, res.stderr);
    const lines = res.stderr.split('\n').filter((l) => l.startsWith('p2calib: tidl-config: '));
    assert.is(lines.length, 5, res.stderr);
    assert.ok(lines.some((l) => /artifacts_folder = "x": ignored/.test(l)));
    const t = JSON.parse(readFileSync(join(dir, 'out/calibration.json'), 'utf8')) as sdk.CalibrationTable;
    assert.is(t.bits, 16, 'from the TIDL options');
    assert.is(t.preset, 'advanced-dw', 'the config file wins over accuracy_level');
    assert.is(t.images, 2, 'calibration_frames');
    assert.equal(t.floatNodes, ['Sigmoid_gate']);
    assert.is(t.provenance!.preprocessing!.resize, 'fill');
    // eval takes the recorded preprocessing and says which of its images were calibration images.
    const ev = await runCli(['eval', join(dir, 'm.onnx'), '--task', 'generic', '--images', dir, '--calibration', join(dir, 'out')]);
    assert.is(ev.code, 0, ev.stderr);
    assert.match(ev.stderr, /^p2calib: warning: 2 of the 3 images were also calibration images/m);
    const bad = await runCli(['calibrate', join(dir, 'm.onnx'), '--images', dir, '--out', join(dir, 'out2'), '--config', join(dir, 'tidl.txt')]);
    assert.is(bad.code, 2);
    assert.match(bad.stderr, /^p2calib: error: --config .*not valid JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

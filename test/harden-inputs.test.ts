/**
 * Bad values rather than bad files: flags (negative numbers, misspelt options, limits), models
 * whose numbers no calibration survives, names carrying escape codes, edited calibration.json
 * files, and SDK calls with arguments of the wrong kind. Through the real CLI process, or the SDK
 * for the SDK's cases.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sdk from '../sdk/index.js';
import { P2Error } from '../sdk/errors.js';
import { tableHash } from '../sdk/export/table.js';
import { BAD_MODELS, noise } from './bad-models.js';
import { assertUserError, runCli, stderrLines } from './cli-run.js';
import { ROOT, buildModel, node, randomArray, randomTensor } from './helpers.js';
import { numberOption, parse, type Options } from '../cli/args.js';

const dir = mkdtempSync(join(tmpdir(), 'p2calib-harden-inputs-'));
const path = (...p: string[]) => join(dir, ...p);
const MODEL = path('model.onnx');
const IMAGES = path('images');
const SPEC = ['--preprocess', 'imagenet', '--size', '8x8'];
const calibrate = (...extra: string[]) => ['calibrate', MODEL, '--images', IMAGES, '--out', path('out'), ...SPEC, ...extra];
const bytes = buildModel({
  inputs: [{ name: 'x', dims: [1, 3, 8, 8] }], outputs: [{ name: 'y' }],
  nodes: [node('Conv', ['x', 'w', 'b'], ['c'], { pads: [1, 1, 1, 1] }), node('Relu', ['c'], ['r']), node('Conv', ['r', 'w2', 'b2'], ['y'])],
  initializers: { w: randomTensor([4, 3, 3, 3], 1), b: randomTensor([4], 2), w2: randomTensor([2, 4, 1, 1], 3), b2: randomTensor([2], 4) },
});

test.before(async () => {
  writeFileSync(MODEL, bytes);
  mkdirSync(IMAGES);
  for (let i = 0; i < 3; i++) {
    writeFileSync(join(IMAGES, `${i}.png`), await sharp(Buffer.from(noise(8 * 8 * 3, i + 1)), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer());
  }
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function p2error(f: () => unknown): Promise<P2Error> {
  try {
    await f();
  } catch (e) {
    if (e instanceof P2Error) return e;
    throw new Error(`not a P2Error: ${(e as Error)?.stack ?? e}`);
  }
  throw new Error('no error');
}

test('flags: negative numbers, misspelt and unknown options, missing values get the tool\'s own one line; --version', async () => {
  const cases: [string[], RegExp][] = [
    [calibrate('--limit', '-1'), /^p2calib: error: --limit must be an integer >= 1, got "-1"$/],
    [calibrate('--workers', '-1'), /--workers must be an integer >= 1, got "-1"/],
    [calibrate('--batch', '-3'), /--batch must be an integer >= 1, got "-3"/],
    [calibrate('--iterations', '-5'), /--iterations must be an integer >= 1, got "-5"/],
    [calibrate('--bias-factor', '-1'), /--bias-factor must be a number >= 0 and <= 1, got "-1"/],
    [calibrate('--iterations', '1e9'), /--iterations must be at most 1000, got "1e9"/],
    [calibrate('--itterations', '3'), /^p2calib: error: unknown option '--itterations' \(did you mean --iterations\?\)$/],
    [['calibrat', MODEL], /unknown command "calibrat" \(did you mean calibrate\? commands: /],
    // Trace names stay in --trace-dir.
    [['simulate', MODEL, '--calibration', dir, '--image', MODEL, '--trace-dir', path('t'), '--trace-base', '../up'], /--trace-base must be a file name prefix \(no "\/"\), got "\.\.\/up"/],
  ];
  // A few at a time: each process loads the SDK.
  for (let i = 0; i < cases.length; i += 4) {
    const batch = cases.slice(i, i + 4);
    (await Promise.all(batch.map(([args]) => runCli(args)))).forEach((r, k) => assertUserError(r, batch[k][1], batch[k][0].join(' ')));
  }
  // The same parser in this process, for the other mistakes.
  const options: Options = { out: { type: 'string' }, seed: { type: 'string' }, force: { type: 'boolean' }, 'nms-iou': { type: 'string' } };
  for (const [args, message] of [
    [['--frobnicate'], /^unknown option '--frobnicate'$/], [['-q'], /^unknown option '-q'$/], [['--seed'], /^--seed needs a value$/],
    [['--out', '--force'], /^--out needs a value$/], [['--force=yes'], /^--force takes no value$/], [['--sed', '1'], /did you mean --seed\?/],
  ] as [string[], RegExp][]) {
    const e = await p2error(() => parse(['m.onnx', ...args], options, ['MODEL']));
    assert.is(e.code, 'BAD_OPTION');
    assert.match(e.message, message);
  }
  assert.is(parse(['m.onnx', '--nms-iou', '-0.5'], options, ['MODEL']).values['nms-iou'], '-0.5');
  assert.match((await p2error(() => numberOption('-0.5', 'nms-iou', { min: 0 }))).message, /^--nms-iou must be a number >= 0, got "-0\.5"$/);
  // A negative value where negatives are allowed is a value, not an option.
  const mean = await runCli(['eval', MODEL, '--task', 'generic', '--images', IMAGES, ...SPEC, '--mean', '-1', '--json']);
  assert.is(mean.code, 0, mean.stderr);
  const version = await runCli(['--version']);
  assert.is(version.code, 0);
  assert.is(version.stdout.trim(), `p2calib ${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version}`);
});

test('--workers is capped at the cores (said on stderr) and at the images; --iterations at 1000 in the SDK too', async () => {
  const r = await runCli([...calibrate('--workers', '1000', '--json', '--preset', 'simple'), '--force']);
  assert.is(r.code, 0, r.stderr);
  const cores = availableParallelism();
  assert.equal(stderrLines(r), [`p2calib: warning: --workers 1000 is more than the ${cores} cores; using ${cores}`]);
  assert.is(JSON.parse(r.stdout).workers, Math.min(cores, 3));
  const model = await sdk.loadModel(bytes);
  const e = await p2error(() => sdk.calibrate(model, [randomArray(192, 1)], { iterations: 1e9 }));
  assert.is(e.code, 'BAD_OPTION');
  assert.match(e.message, /iterations must be a positive integer \(at most 1000\), got 1000000000/);
});

test('models whose numbers no calibration survives: calibrate names the tensor and the value (inspect too, see bad-models.ts)', async () => {
  const names = ['a NaN weight', 'a 3e38 weight', 'a negative BatchNormalization variance', 'a weight of dims [0,3,3,3]', 'a graph without outputs'];
  const bad = names.map((n) => BAD_MODELS.find((b) => b.name === n)!);
  const results = await Promise.all(bad.map((b, i) => {
    const file = path(`bad${i}.onnx`);
    writeFileSync(file, b.bytes());
    return runCli(['calibrate', file, '--images', IMAGES, '--out', path(`bad-out${i}`), ...SPEC]);
  }));
  results.forEach((r, i) => assertUserError(r, bad[i].message, bad[i].name));
  // inspect does not load a model with unsupported ops, and still names the bad number.
  const frob = path('frob.onnx');
  const w = randomTensor([2, 3, 3, 3], 1);
  w.data[4] = NaN;
  writeFileSync(frob, buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 8, 8] }], outputs: [{ name: 'y' }],
    nodes: [node('Conv', ['x', 'w'], ['c']), node('Frobnicate', ['c'], ['y'])], initializers: { w },
  }));
  assertUserError(await runCli(['inspect', frob]), /initializer "w" holds NaN at \[0,0,1,1\]/);
});

test('calibrate in the SDK: all-NaN or all-Inf samples, and a float model that overflows, name the cause', async () => {
  const model = await sdk.loadModel(bytes);
  for (const [value, shown] of [[NaN, 'NaN'], [Infinity, 'Infinity'], [-Infinity, '-Infinity']] as const) {
    const e = await p2error(() => sdk.calibrate(model, [randomArray(192, 1), new Float32Array(192).fill(value)]));
    assert.is(e.code, 'BAD_INPUT');
    assert.is(e.message, `calibration sample 2: input "x" holds ${shown} at index 0; samples must be finite`);
  }
  // Finite weights and inputs whose products overflow float32.
  const huge = await sdk.loadModel(buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 8, 8] }], outputs: [{ name: 'y' }],
    nodes: [node('Conv', ['x', 'w'], ['c']), node('Conv', ['c', 'w2'], ['y'])],
    initializers: { w: randomTensor([4, 3, 1, 1], 1, 1e18, 1.1e18), w2: randomTensor([2, 4, 1, 1], 2, 1e18, 1.1e18) },
  }));
  const e = await p2error(() => sdk.calibrate(huge, [randomArray(192, 1, 1e3, 2e3)]));
  assert.is(e.code, 'BAD_INPUT');
  assert.match(e.message, /^sample 1: tensor "y" of the float model takes values from -?(Infinity|NaN) to -?(Infinity|NaN), which no fixed-point format holds/);
});

test('inspect and calibrate print names with escape codes and line breaks escaped', async () => {
  const evil = 'conv\u001b[31m\nred\u009b2J';
  const file = path('evil.onnx');
  writeFileSync(file, buildModel({
    inputs: [{ name: `in\r${evil}`, dims: [1, 3, 8, 8] }], outputs: [{ name: `out\u001b]0;title\u0007` }],
    nodes: [{ ...node('Conv', [`in\r${evil}`, 'w'], [`out\u001b]0;title\u0007`], { pads: [1, 1, 1, 1] }), name: evil }],
    initializers: { w: randomTensor([2, 3, 3, 3], 1) },
  }));
  const [text, json, cal] = await Promise.all([
    runCli(['inspect', file]), runCli(['inspect', file, '--json']), runCli(['calibrate', file, '--images', IMAGES, '--out', path('evil-out'), ...SPEC, '--workers', '1']),
  ]);
  for (const r of [text, json, cal]) {
    assert.is(r.code, 0, r.stderr);
    assert.not.match(r.stdout, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, 'no control character reaches the terminal');
  }
  assert.match(text.stdout, /^ {2}in\\u000dconv\\u001b\[31m\\u000ared\\u009b2J float32 \[1, 3, 8, 8\]$/m);
  assert.is(JSON.parse(json.stdout).inputs[0].name, `in\r${evil}`, 'the JSON holds the names themselves');
  assert.match(cal.stdout, /conv\\u001b\[31m\\u000ared\\u009b2J/);
});

/** calibration.json written by the SDK, then edited: what eval and readCalibration make of it. */
test('an edited calibration.json is refused, naming the field; a hash recomputed after an edit does not help', async () => {
  const model = await sdk.loadModel(bytes);
  const cal = await sdk.calibrate(model, [randomArray(192, 1), randomArray(192, 2, 0, 1)]);
  const good = path('cal-good');
  sdk.saveCalibration(cal, good);
  const text = readFileSync(join(good, 'calibration.json'), 'utf8');
  const table = JSON.parse(text);
  assert.match(table.integrity, /^sha256:[0-9a-f]{64}$/);
  assert.is(Object.keys(table).at(-1), 'integrity');
  const [layer, second] = Object.keys(table.layers);
  const tensor = table.layers[layer].output;
  type Edit = [string, (t: any) => void, RegExp];
  const derived = (field: string) => new RegExp(`calibration\\.json: "${field.replace(/[.[\]]/g, '\\$&')}" is .*, but this model and the device's rules give .* \\(the file was edited, or made for another model\\)`);
  const edits: Edit[] = [
    ['shift', (t) => { t.layers[layer].shift[0] += 1; }, derived(`layers.${layer}.shift[0]`)],
    ['biasA', (t) => { t.layers[layer].biasA[2] += 1; }, derived(`layers.${layer}.biasA[2]`)],
    ['bits', (t) => { t.tensors[tensor].bits = 16; }, derived(`tensors.${tensor}.bits`)],
    ['scaleLog2', (t) => { t.tensors[tensor].scaleLog2 -= 1; }, derived(`tensors.${tensor}.scaleLog2`)],
    ['negative clip', (t) => { t.tensors[tensor].clip = [-8, 8]; }, derived(`tensors.${tensor}.clip[0]`)],
    ['weight scales', (t) => { t.layers[second].weightScaleLog2[0] -= 1; }, new RegExp(`"layers\\.${second}\\.weightScaleLog2" is \\[\\d+\\], but this model's weights and the saved ranges give`)],
    ['a tensor of another model', (t) => { t.tensors.extra = t.tensors[tensor]; }, /"tensors\.extra" is not a quantized tensor of this model/],
  ];
  const write = (name: string, t: unknown, rehash: boolean) => {
    const d = path(`cal-${name.replace(/\W/g, '-')}-${rehash}`);
    mkdirSync(d);
    const content = t as Record<string, unknown>;
    writeFileSync(join(d, 'calibration.json'), JSON.stringify(rehash ? { ...content, integrity: tableHash(content) } : content, null, 1));
    return d;
  };
  const evalWith = (d: string) => runCli(['eval', MODEL, '--task', 'generic', '--images', IMAGES, ...SPEC, '--calibration', d]);
  // Through the CLI as written (the hash gives it away), and in the SDK with the hash recomputed
  // (the consistency checks do).
  const cli = await Promise.all([edits[0], edits[4]].map(([name, edit]) => {
    const t = structuredClone(table);
    edit(t);
    return evalWith(write(name, t, false));
  }));
  cli.forEach((r) => assertUserError(r, /calibration\.json was modified after p2calib wrote it: its content does not match its "integrity" hash/));
  for (const [name, edit, message] of edits) {
    const t = structuredClone(table);
    edit(t);
    const e = await p2error(() => sdk.readCalibration(model, write(name, t, true)));
    assert.is(e.code, 'BAD_INPUT', name);
    assert.match(e.message, message, name);
  }
  // A primary value (a range, a bias) has nothing to be checked against but the hash.
  const range = structuredClone(table);
  range.tensors[tensor].range[1] *= 1.01;
  assert.match((await p2error(() => sdk.readCalibration(model, write('range', range, false)))).message, /does not match its "integrity" hash/);
  const noHash = structuredClone(table);
  delete noHash.integrity;
  assertUserError(await evalWith(write('no-hash', noHash, false)), /calibration\.json has no "integrity" hash: it was not written by this version of p2calib, or was edited/);
  // Key order and layout are not content: the same table re-indented still loads.
  const reordered = Object.fromEntries(Object.entries(table).reverse());
  const ok = await evalWith(write('reindented', reordered, false));
  assert.is(ok.code, 0, ok.stderr);
});

test('SDK: arguments of the wrong kind give a P2Error with a code, never a TypeError', async () => {
  const model = await sdk.loadModel(bytes);
  const cal = await sdk.calibrate(model, [randomArray(192, 1)], { preset: 'simple' });
  const plan = await cal.fixedPlan(1);
  assert.is((await p2error(() => sdk.loadModel(null as never))).code, 'BAD_INPUT');
  assert.match((await p2error(() => model.run(null as never))).message, /feeds must be a Float32Array or a record of Float32Arrays by input name/);
  const hostile: unknown[] = [null, undefined, 42, 'x', {}, [], new Uint8Array(3), () => 1, NaN, { x: [1, 2] }, { inputShape: 'x' }, { onProgress: 5 }];
  const calls: Record<string, (a: unknown) => unknown> = {
    loadModel: (a) => sdk.loadModel(a as never), 'loadModel options': (a) => sdk.loadModel(bytes, a as never),
    calibrate: (a) => sdk.calibrate(a as never, []), 'calibrate samples': (a) => sdk.calibrate(model, a as never),
    'calibrate options': (a) => sdk.calibrate(model, [randomArray(192, 1)], a as never),
    loadCalibration: (a) => sdk.loadCalibration(model, a as never), 'model.run': (a) => model.run(a as never),
    'model.floatPlan': (a) => model.floatPlan(a as never), 'model.withPixelInput': (a) => model.withPixelInput(a as never),
    'cal.run': (a) => cal.run(a as never), 'cal.fixedPlan': (a) => cal.fixedPlan(a as never), 'cal.toQdqOnnx': (a) => cal.toQdqOnnx(a as never),
    'plan.run': (a) => plan.run(a as never), 'FixedPlan.create': (a) => sdk.FixedPlan.create(a as never, 1, cal.spec),
    captureTraces: (a) => sdk.captureTraces(a as never, {}), compareTraces: (a) => sdk.compareTraces(a as never, new Map()),
    traceFiles: (a) => sdk.traceFiles(a as never), tableJson: (a) => sdk.tableJson(a as never),
    parseSpec: (a) => sdk.parseSpec(a), presetSpec: (a) => sdk.presetSpec(a as never), sizeSpec: (a) => sdk.sizeSpec(a as never),
    pixelAffine: (a) => sdk.pixelAffine(a as never), pixelSpec: (a) => sdk.pixelSpec(a as never),
    activationHistograms: (a) => sdk.activationHistograms(model, a as never, ['c']),
    calibrateImageSet: (a) => sdk.calibrateImageSet(a as never, [], {} as never, {} as never),
    decodeImage: (a) => sdk.decodeImage(a as never), loadImageTensor: (a) => sdk.loadImageTensor(a as never, sdk.presetSpec('imagenet')),
    openDataset: (a) => sdk.openDataset(a as never), calibrateImages: (a) => sdk.calibrateImages(model, a as never, sdk.presetSpec('imagenet')),
    evaluate: (a) => sdk.evaluate(model, a as never), readCalibration: (a) => sdk.readCalibration(model, a as never),
    saveCalibration: (a) => sdk.saveCalibration(a as never, path('never')), readTraceDir: (a) => sdk.readTraceDir(a as never),
    writeTraceDir: (a) => sdk.writeTraceDir(path('never-traces'), a as never),
  };
  let refused = 0;
  for (const [name, call] of Object.entries(calls)) {
    for (const a of hostile) {
      try {
        await call(a);
      } catch (e) {
        if (!(e instanceof P2Error) || !e.code) throw new Error(`${name}(${String(a)}): ${(e as Error)?.stack ?? e}`);
        refused++;
      }
    }
  }
  assert.ok(refused > Object.keys(calls).length * 6, `${refused} refusals`);
});

test.run();

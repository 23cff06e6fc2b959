/**
 * Bad input through the real CLI process: every bad model of test/bad-models.ts, bad files, bad
 * image folders (with and without --strict) and output folders that must not be overwritten.
 * User errors exit with code 2 and print one line, never a stack trace.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BAD_MODELS, noise, pngHeader } from './bad-models.js';
import { assertUserError, runCli, stderrLines, type CliResult } from './cli-run.js';
import { traceSeeds } from './fuzz.js';
import { buildModel, node, randomTensor } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'p2calib-harden-cli-'));
const path = (...p: string[]) => join(dir, ...p);

const MODEL = path('model.onnx');
writeFileSync(MODEL, buildModel({
  inputs: [{ name: 'x', dims: [1, 3, 16, 16] }], outputs: [{ name: 'y' }],
  nodes: [
    node('Conv', ['x', 'w', 'b'], ['c'], { pads: [1, 1, 1, 1] }), node('Relu', ['c'], ['r']),
    node('GlobalAveragePool', ['r'], ['p']), node('Flatten', ['p'], ['y']),
  ],
  initializers: { w: randomTensor([4, 3, 3, 3], 1), b: randomTensor([4], 2) },
}));

async function png(file: string, seed: number, width = 20, height = 20): Promise<void> {
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, await sharp(Buffer.from(noise(width * height * 3, seed)), { raw: { width, height, channels: 3 } }).png().toBuffer());
}

const SPEC = ['--preprocess', 'imagenet', '--size', '16x16'];
const calibrateWith = (model: string, images: string, out: string, ...extra: string[]) => runCli(['calibrate', model, '--images', images, '--out', out, ...SPEC, ...extra]);
const calibrate = (images: string, out: string, ...extra: string[]) => calibrateWith(MODEL, images, out, ...extra);
const evalGeneric = (images: string, ...extra: string[]) => runCli(['eval', MODEL, '--task', 'generic', '--images', images, ...SPEC, ...extra]);

test.before(async () => {
  for (let i = 0; i < 3; i++) await png(path('good', `img${i}.png`), i + 1);
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('bad models: exit 2 with one line naming the problem (inspect; calibrate for unsupported ops)', async () => {
  for (const bad of BAD_MODELS) {
    const file = path(`bad-${bad.name.replace(/\W+/g, '-')}.onnx`);
    writeFileSync(file, bad.bytes());
    const r = bad.reported ? await calibrateWith(file, path('good'), path('out-unsupported'), '--force') : await runCli(['inspect', file]);
    assertUserError(r, bad.message, bad.name);
  }
});

test('model files: missing, a folder, a device, over 2 GiB; exit 2 with one line', async () => {
  assertUserError(await runCli(['inspect', path('nope.onnx')]), /model file not found: .*nope\.onnx/);
  assertUserError(await runCli(['inspect', dir]), /model file is a directory/);
  assertUserError(await runCli(['inspect', '/dev/zero']), /model file is not a regular file: \/dev\/zero/);
  // A 3 GiB (sparse) file: refused from its size, never read.
  const big = path('big.onnx');
  writeFileSync(big, '');
  truncateSync(big, 3 * 2 ** 30);
  assertUserError(await runCli(['inspect', big]), /cannot read model file .*big\.onnx: File size \(3221225472\) is greater than 2 GiB/);
  rmSync(big);
});

test('image folders: non-image and broken files are skipped with a warning, or refused with --strict', async () => {
  const mixed = path('mixed');
  for (let i = 0; i < 3; i++) await png(join(mixed, `ok${i}.png`), 10 + i);
  writeFileSync(join(mixed, 'notes.txt'), 'not an image');
  writeFileSync(join(mixed, 'empty.jpg'), new Uint8Array(0));
  writeFileSync(join(mixed, 'junk.png'), noise(300, 5));
  writeFileSync(join(mixed, 'huge.png'), pngHeader(30000, 30000));
  await png(join(mixed, 'sliver.png'), 20, 1, 20000); // 1x20000: a crop to 16x16 would resize it to 18x360000

  for (const [what, run] of [['calibrate', () => calibrate(mixed, path('out-mixed'), '--json')], ['eval', () => evalGeneric(mixed, '--json')]] as const) {
    const r: CliResult = await run();
    assert.is(r.code, 0, `${what}: ${r.stderr}`);
    const warnings = stderrLines(r);
    assert.ok(warnings.every((l) => l.startsWith('p2calib: warning: ') && l.endsWith('(skipped)')), r.stderr);
    for (const m of [/1 file in .*mixed is not an image \(notes\.txt\)/, /empty\.jpg: the file is empty/, /cannot decode image .*junk\.png/,
      /image .*huge\.png is 30000x30000 pixels, beyond the limit of 100000000/, /sliver\.png: a 1x20000 image would be resized to \d+x\d+ for "crop"/]) {
      assert.ok(warnings.some((l) => m.test(l)), `${what}: no warning matching ${m} in\n${r.stderr}`);
    }
    assert.is(warnings.length, 5, r.stderr);
    const images = JSON.parse(r.stdout).images;
    assert.is(images, 3, `${what} used the three good images`);
  }
  rmSync(path('out-mixed'), { recursive: true });

  // --strict: the first unusable file is the error (the folder listing comes first).
  assertUserError(await evalGeneric(mixed, '--strict'), /mixed\/notes\.txt is not an image file/);
  rmSync(join(mixed, 'notes.txt'));
  assertUserError(await evalGeneric(mixed, '--strict'), /cannot decode image .*empty\.jpg: the file is empty/);
  rmSync(join(mixed, 'empty.jpg'));
  assertUserError(await calibrate(mixed, path('out-strict'), '--strict'), /image .*huge\.png is 30000x30000 pixels/);
  rmSync(join(mixed, 'huge.png'));
  assertUserError(await evalGeneric(mixed, '--strict'), /cannot decode image .*junk\.png/);
  rmSync(join(mixed, 'junk.png'));
  assertUserError(await evalGeneric(mixed, '--strict'), /sliver\.png: a 1x20000 image would be resized/);
});

test('image folders: an empty folder, and a folder with no usable image, are errors', async () => {
  mkdirSync(path('none'));
  assertUserError(await calibrate(path('none'), path('out-none')), /no images \(.*\) in .*none/);
  mkdirSync(path('broken'));
  writeFileSync(path('broken', 'a.jpg'), noise(100, 1));
  writeFileSync(path('broken', 'b.png'), new Uint8Array(0));
  for (const r of [await calibrate(path('broken'), path('out-broken')), await evalGeneric(path('broken'))]) {
    const lines = stderrLines(r);
    assert.is(r.code, 2, r.stderr);
    assert.is(lines.length, 3, r.stderr); // two warnings, then the error
    assert.match(lines[2], /^p2calib: error: none of the 2 images could be used$/);
  }
});

test('outputs: a non-empty --out is refused without --force and left untouched', async () => {
  const out = path('out-busy');
  mkdirSync(out);
  writeFileSync(join(out, 'model.qdq.onnx'), 'my precious file');
  assertUserError(await calibrate(path('good'), out), /--out .*out-busy is not empty \(model\.qdq\.onnx\); pass --force to overwrite its files/);
  assert.is(readFileSync(join(out, 'model.qdq.onnx'), 'utf8'), 'my precious file');
  assertUserError(await runCli(['demo', '--out', out]), /--out .*out-busy is not empty/);
  assert.equal(readdirSync(out), ['model.qdq.onnx']);
  const r = await calibrate(path('good'), out, '--force');
  assert.is(r.code, 0, r.stderr);
  assert.equal(readdirSync(out).sort(), ['calibration.json', 'model.calibrated.onnx', 'model.qdq.onnx', 'tidl_quant_params.prototxt']);
});

test('outputs: temp files left by a killed run are removed by the next one; live ones are not touched', async () => {
  const out = path('out-stale');
  mkdirSync(out);
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  writeFileSync(join(out, `.model.qdq.onnx.${dead}.tmp`), 'half a file');
  const r = await calibrate(path('good'), out);
  assert.is(r.code, 0, r.stderr);
  assert.equal(readdirSync(out).sort(), ['calibration.json', 'model.calibrated.onnx', 'model.qdq.onnx', 'tidl_quant_params.prototxt']);
  // A temp file of a process that still runs (this one) is someone's write in progress.
  const busy = path('out-live');
  mkdirSync(busy);
  writeFileSync(join(busy, `.model.qdq.onnx.${process.pid}.tmp`), 'being written');
  assertUserError(await calibrate(path('good'), busy), /is not empty \(\.model\.qdq\.onnx\.\d+\.tmp\)/);
  assert.ok(existsSync(join(busy, `.model.qdq.onnx.${process.pid}.tmp`)));
});

test('compare: unexpected names, orphan float files, absurd dims and broken layer info are reported, never a crash', async () => {
  const [a, b] = [path('traces-a'), path('traces-b')];
  for (const d of [a, b]) {
    mkdirSync(d);
    for (const [name, bytes] of traceSeeds()[0].files) writeFileSync(join(d, name), bytes);
  }
  const same = await runCli(['compare', a, b]);
  assert.is(same.code, 0, same.stdout + same.stderr);
  const y = readdirSync(b).filter((f) => f.endsWith('.y')).sort();
  writeFileSync(join(b, 'notes.txt'), 'not a trace'); // never read
  renameSync(join(b, y[1]), join(b, `odd\nname${y[1]}`));
  rmSync(join(b, y[2]));
  writeFileSync(join(b, 'tidl_trace0009_0001_0001_99999_99999_99999x99999.y'), new Uint8Array(10));
  writeFileSync(join(b, 'layer_info.txt'), '\t\tint8\n0 1 2\nx\ty\n');
  const r = await runCli(['compare', a, b]);
  assert.is(r.code, 1, r.stderr);
  assert.is(r.stderr, '');
  const out = r.stdout;
  for (const m of [
    /malformed trace file name "odd\\u000aname/, /"tidl_trace0002_[^"]+_float\.bin" has no \.y file beside it/,
    /"tidl_trace0009_0001_0001_99999_99999_99999x99999\.y" has 10 bytes; its dims 1x1x99999x99999x99999x99999 need/,
    /layer 1 \([^)]*\): "tidl_trace0001_[^"]+" is in .*traces-a but missing in .*traces-b/, /result: MISMATCH/,
  ]) assert.match(out, m);
  assert.not.match(out, /notes\.txt/);
  assertUserError(await runCli(['compare', a, join(b, 'notes.txt')]), /not a folder: .*notes\.txt/);
  mkdirSync(path('traces-empty'));
  const empty = await runCli(['compare', path('traces-empty'), path('traces-empty')]);
  assert.is(empty.code, 1);
  assert.match(empty.stdout, /no trace files \(\.y\) in/);
});

test.run();

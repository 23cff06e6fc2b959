/**
 * Bad input through the real CLI process: every bad model of test/bad-models.ts, bad files, bad
 * image folders (with and without --strict) and output folders that must not be overwritten.
 * User errors exit with code 2 and print one line, never a stack trace.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, crc32 } from 'node:zlib';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BAD_MODELS, noise } from './bad-models.js';
import { assertUserError, runCli, stderrLines, type CliResult } from './cli-run.js';
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

/** A PNG whose header claims width x height; its pixel data is a few bytes (a decompression bomb
 *  as far as the header goes). */
function pngHeader(width: number, height: number): Uint8Array {
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

test('model files: missing, a folder, a device; exit 2 with one line', async () => {
  assertUserError(await runCli(['inspect', path('nope.onnx')]), /model file not found: .*nope\.onnx/);
  assertUserError(await runCli(['inspect', dir]), /model file is a directory/);
  assertUserError(await runCli(['inspect', '/dev/zero']), /model file is not a regular file: \/dev\/zero/);
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
  assert.equal(readdirSync(out).sort(), ['calibration.json', 'model.calibrated.onnx', 'model.qdq.onnx']);
});

test('outputs: temp files left by a killed run are removed by the next one; live ones are not touched', async () => {
  const out = path('out-stale');
  mkdirSync(out);
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  writeFileSync(join(out, `.model.qdq.onnx.${dead}.tmp`), 'half a file');
  const r = await calibrate(path('good'), out);
  assert.is(r.code, 0, r.stderr);
  assert.equal(readdirSync(out).sort(), ['calibration.json', 'model.calibrated.onnx', 'model.qdq.onnx']);
  // A temp file of a process that still runs (this one) is someone's write in progress.
  const busy = path('out-live');
  mkdirSync(busy);
  writeFileSync(join(busy, `.model.qdq.onnx.${process.pid}.tmp`), 'being written');
  assertUserError(await calibrate(path('good'), busy), /is not empty \(\.model\.qdq\.onnx\.\d+\.tmp\)/);
  assert.ok(existsSync(join(busy, `.model.qdq.onnx.${process.pid}.tmp`)));
});

test.run();

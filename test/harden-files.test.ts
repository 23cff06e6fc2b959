/**
 * Paths the CLI is given or follows, through the real CLI process: output folders it cannot
 * create (under a file, through a dangling link, in /proc, on a read-only or full file system),
 * calibration.json as a device or a FIFO, external data and trace files reached through links out
 * of their folder, hidden files that look like temp files, image folders with broken links, loops
 * and FIFOs, two runs writing one folder, and a signal during the final renames.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { noise, proto, valueInfo } from './bad-models.js';
import { assertUserError, runCli, stderrLines, type CliResult } from './cli-run.js';
import { traceSeeds } from './fuzz.js';
import { ROOT, buildModel, node, randomTensor } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'p2calib-harden-files-'));
const path = (...p: string[]) => join(dir, ...p);
const MODEL = path('model.onnx');
const IMAGES = path('images');
const SPEC = ['--preprocess', 'imagenet', '--size', '16x16'];
const FILES = ['calibration.json', 'model.calibrated.onnx', 'model.qdq.onnx', 'tidl_quant_params.prototxt'];
const calibrate = (out: string, ...extra: string[]) => ['calibrate', MODEL, '--images', IMAGES, '--out', out, ...SPEC, '--workers', '1', ...extra];
const SLOW = join(ROOT, 'dist/test/slow-renames.js');

/** A run that must end by itself: killed (and failed) after `seconds`, so a hang cannot stall the suite. */
async function bounded(args: string[], seconds = 20): Promise<CliResult> {
  let timer: NodeJS.Timeout | undefined;
  const r = await runCli(args, (child) => { timer = setTimeout(() => child.kill('SIGKILL'), seconds * 1000); });
  clearTimeout(timer);
  assert.is.not(r.signal, 'SIGKILL', `${args.join(' ')} did not end within ${seconds} s`);
  return r;
}

function mkfifo(p: string): void {
  execFileSync('mkfifo', [p]);
}

async function png(file: string, seed: number): Promise<void> {
  writeFileSync(file, await sharp(Buffer.from(noise(20 * 20 * 3, seed)), { raw: { width: 20, height: 20, channels: 3 } }).png().toBuffer());
}

test.before(async () => {
  writeFileSync(MODEL, buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 16, 16] }], outputs: [{ name: 'y' }],
    nodes: [node('Conv', ['x', 'w', 'b'], ['c'], { pads: [1, 1, 1, 1] }), node('Relu', ['c'], ['y'])],
    initializers: { w: randomTensor([4, 3, 3, 3], 1), b: randomTensor([4], 2) },
  }));
  mkdirSync(IMAGES);
  for (let i = 0; i < 3; i++) await png(join(IMAGES, `${i}.png`), i + 1);
  const r = await runCli(calibrate(path('reference'), '--json'));
  assert.is(r.code, 0, r.stderr);
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('--out that cannot be created: /proc, under a file, through dangling links; exit 2 with one line, no hang', async () => {
  writeFileSync(path('a-file'), 'x');
  symlinkSync(path('nowhere'), path('dangling'));
  const cases: [string, RegExp][] = [
    ['/proc/self/p2calib-out', /cannot create --out \/proc\/self\/p2calib-out: the file system does not allow a folder there/],
    [path('a-file', 'out'), /cannot create --out .*a-file\/out: .*a-file is not a folder/],
    [path('dangling'), /--out .*dangling is a dangling symbolic link/],
    [path('dangling', 'sub', 'out'), /cannot create --out .*dangling\/sub\/out: .*dangling is a dangling symbolic link/],
  ];
  const results = await Promise.all(cases.map(([out]) => bounded(calibrate(out))));
  results.forEach((r, i) => assertUserError(r, cases[i][1], cases[i][0]));
});

test('--out on a read-only file system and on one out of inodes: exit 2 with the reason (when tmpfs can be mounted)', async () => {
  const mounts: string[] = [];
  const mount = (name: string, opts: string) => {
    const at = path(name);
    mkdirSync(at);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', at], { stdio: 'ignore' }).status !== 0) return undefined;
    mounts.push(at);
    return at;
  };
  try {
    const ro = mount('ro', 'ro,size=1m');
    const full = mount('full', 'size=1m,nr_inodes=2');
    if (!ro || !full) {
      console.log('  (tmpfs cannot be mounted here: read-only and full file systems not tested)');
      return;
    }
    while (spawnSync('mkdir', [join(full, `d${readdirSync(full).length}`)], { stdio: 'ignore' }).status === 0);
    assertUserError(await bounded(calibrate(join(ro, 'out'))), /cannot create --out .*ro\/out: read-only file system \(EROFS\)/);
    assertUserError(await bounded(calibrate(join(full, 'out'))), /cannot create --out .*full\/out: no space left on the device \(ENOSPC\)/);
  } finally {
    for (const m of mounts) spawnSync('umount', [m]);
  }
});

test('calibration.json as a link to /dev/zero or a FIFO: eval and simulate refuse it at once', async () => {
  for (const kind of ['zero', 'fifo']) {
    const cal = path(`cal-${kind}`);
    mkdirSync(cal);
    if (kind === 'zero') symlinkSync('/dev/zero', join(cal, 'calibration.json'));
    else mkfifo(join(cal, 'calibration.json'));
    const [ev, sim] = await Promise.all([
      bounded(['eval', MODEL, '--task', 'generic', '--images', IMAGES, ...SPEC, '--calibration', cal]),
      bounded(['simulate', MODEL, '--calibration', cal, '--image', join(IMAGES, '0.png'), '--trace-dir', path(`traces-${kind}`), ...SPEC]),
    ]);
    for (const r of [ev, sim]) assertUserError(r, /calibration\.json is not a regular file: .*calibration\.json/, kind);
  }
});

test('external data through a link out of the model folder is refused; a link inside it is read', async () => {
  const models = path('ext');
  mkdirSync(join(models, 'inside'), { recursive: true });
  writeFileSync(path('outside.bin'), new Uint8Array(16));
  writeFileSync(join(models, 'inside', 'w.bin'), new Float32Array([1, 2, 3, 4]));
  symlinkSync(path('outside.bin'), join(models, 'link.bin'));
  symlinkSync('/etc/passwd', join(models, 'passwd.bin'));
  symlinkSync(dir, join(models, 'up'));
  symlinkSync(join(models, 'inside', 'w.bin'), join(models, 'ok.bin'));
  const withData = (location: string) => {
    const file = join(models, `m-${location.replace(/\W/g, '_')}.onnx`);
    writeFileSync(file, proto({
      node: [{ op_type: 'Add', input: ['x', 'w'], output: ['y'] }],
      initializer: [{ name: 'w', dims: [4], data_type: 1, data_location: 1, external_data: [{ key: 'location', value: location }] }],
      input: [valueInfo('x', [4])], output: [valueInfo('y', [4])],
    }));
    return file;
  };
  const refused: [string, RegExp][] = [
    ['link.bin', /external file "link\.bin": external data file .*link\.bin resolves to .*outside\.bin, outside .*ext/],
    ['passwd.bin', /resolves to \/etc\/passwd, outside/],
    ['up/outside.bin', /external file "up\/outside\.bin": .*resolves to .*outside\.bin, outside/],
    ['/etc/passwd', /external file "\/etc\/passwd": the location "\/etc\/passwd" is not a relative path inside the model's folder/],
  ];
  const results = await Promise.all(refused.map(([loc]) => bounded(['inspect', withData(loc)])));
  results.forEach((r, i) => assertUserError(r, refused[i][1], refused[i][0]));
  const ok = await bounded(['inspect', withData('ok.bin'), '--json']);
  assert.is(ok.code, 0, ok.stderr);
  assert.is(JSON.parse(ok.stdout).params, 4);
});

test('hidden files named like temp files are the user\'s unless they are the tool\'s own names, and are never deleted', async () => {
  const out = path('out-hidden');
  mkdirSync(out);
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const mine = [`.notes.${dead}.tmp`, `.model.qdq.onnx.${dead}.tmp.keep`, `.calibration.json.x${dead}.tmp`];
  for (const f of mine) writeFileSync(join(out, f), 'my file');
  // A link under one of the tool's temp names is not the tool's file either.
  symlinkSync(path('model.onnx'), join(out, `.model.calibrated.onnx.${dead}.tmp`));
  assertUserError(await runCli(calibrate(out)), /--out .*out-hidden is not empty/);
  const r = await runCli(calibrate(out, '--force'));
  assert.is(r.code, 0, r.stderr);
  for (const f of mine) assert.is(readFileSync(join(out, f), 'utf8'), 'my file', f);
  assert.ok(existsSync(join(out, `.model.calibrated.onnx.${dead}.tmp`)));
  assert.equal(readdirSync(out).filter((f) => !f.startsWith('.')).sort(), FILES);
});

test('compare: dangling links, FIFOs, folders and links out of the folder are listed as problems, never a crash', async () => {
  const [a, b] = [path('tr-a'), path('tr-b')];
  for (const d of [a, b]) {
    mkdirSync(d);
    for (const [name, bytes] of traceSeeds()[0].files) writeFileSync(join(d, name), bytes);
  }
  const y = readdirSync(b).filter((f) => f.endsWith('.y')).sort();
  rmSync(join(b, 'layer_info.txt'));
  symlinkSync(path('nowhere'), join(b, 'layer_info.txt'));
  rmSync(join(b, y[0]));
  symlinkSync(join(b, 'missing.y'), join(b, y[0]));
  rmSync(join(b, y[1]));
  mkfifo(join(b, y[1]));
  rmSync(join(b, y[2]));
  symlinkSync(join(a, y[2]), join(b, y[2]));
  mkdirSync(join(b, 'tidl_trace0042_0001_0001_00001_00001_00001x00001.y'));
  const r = await bounded(['compare', a, b]);
  assert.is(r.code, 1, r.stderr);
  assert.is(r.stderr, '');
  for (const m of [
    /"layer_info\.txt" cannot be read \(is a dangling symbolic link/, new RegExp(`"${y[0]}" cannot be read \\(is a dangling symbolic link`),
    new RegExp(`"${y[1]}" cannot be read \\(is not a regular file`), new RegExp(`"${y[2]}" cannot be read \\(.*resolves to .*tr-a.*, outside .*tr-b\\)`),
    /"tidl_trace0042_[^"]+" cannot be read \(is a directory/, /result: MISMATCH/,
  ]) assert.match(r.stdout, m);
});

test('image folders: dangling links, link loops, FIFOs and links to /dev/zero are skipped with a warning, or refused with --strict', async () => {
  const imgs = path('img-links');
  mkdirSync(imgs);
  for (let i = 0; i < 2; i++) await png(join(imgs, `ok${i}.png`), 30 + i);
  symlinkSync(path('nowhere.png'), join(imgs, 'dangling.png'));
  symlinkSync(join(imgs, 'loop.jpg'), join(imgs, 'loop.jpg'));
  mkfifo(join(imgs, 'fifo.png'));
  symlinkSync('/dev/zero', join(imgs, 'zero.jpg'));
  symlinkSync(join(imgs, 'ok0.png'), join(imgs, 'link-ok.png'));
  const [cal, ev, strict] = await Promise.all([
    bounded(['calibrate', MODEL, '--images', imgs, '--out', path('out-links'), ...SPEC, '--json']),
    bounded(['eval', MODEL, '--task', 'generic', '--images', imgs, ...SPEC, '--json']),
    bounded(['eval', MODEL, '--task', 'generic', '--images', imgs, ...SPEC, '--strict']),
  ]);
  for (const r of [cal, ev]) {
    assert.is(r.code, 0, r.stderr);
    const warnings = stderrLines(r);
    assert.is(warnings.length, 4, r.stderr);
    assert.ok(warnings.every((l) => /^p2calib: warning: .* \(skipped\)$/.test(l)), r.stderr);
    for (const m of [/image is a dangling symbolic link: .*dangling\.png/, /image is a loop of symbolic links: .*loop\.jpg/,
      /image is not a regular file: .*fifo\.png/, /image is not a regular file: .*zero\.jpg/]) {
      assert.ok(warnings.some((l) => m.test(l)), `no warning matching ${m}:\n${r.stderr}`);
    }
    assert.is(JSON.parse(r.stdout).images, 3, 'the two images and the link to one of them');
  }
  assertUserError(strict, /image is a dangling symbolic link: .*dangling\.png/);
});

test('two runs writing one --out: the second is refused while the first holds the folder; a stale lock is taken over', async () => {
  const out = path('out-race');
  const slow = { nodeArgs: ['--import', SLOW], env: { P2CALIB_TEST_RENAME_MS: '400' } };
  const first = runCli(calibrate(out, '--json'), undefined, slow);
  for (let t = 0; !existsSync(join(out, '.p2calib.lock')); t++) {
    assert.ok(t < 400, 'the first run took no lock');
    await new Promise((r) => setTimeout(r, 25));
  }
  const second = await runCli(calibrate(out, '--force'));
  assertUserError(second, /--out .*out-race is being written by another p2calib run \(pid \d+\); if none is, remove .*\.p2calib\.lock/);
  const r = await first;
  assert.is(r.code, 0, r.stderr);
  assert.equal(readdirSync(out).sort(), FILES, 'the complete set of the first run, and no lock left');
  for (const f of FILES) assert.ok(readFileSync(join(out, f)).equals(readFileSync(path('reference', f))), f);
  // A lock left by a killed run names a process that no longer runs: the next run takes it over.
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  writeFileSync(join(out, '.p2calib.lock'), `${dead} ${(await import('node:os')).hostname()}\n`);
  const again = await runCli(calibrate(out, '--force'));
  assert.is(again.code, 0, again.stderr);
  assert.equal(readdirSync(out).sort(), FILES);
});

test('a signal during the final renames is honoured once the set is in place: the complete new files, exit 130/143/129', async () => {
  const runs = await Promise.all((['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map(async (signal) => {
    const out = path(`out-${signal}`);
    const r = await runCli(calibrate(out), undefined, { nodeArgs: ['--import', SLOW], env: { P2CALIB_TEST_SIGNAL: signal, P2CALIB_TEST_RENAME_MS: '50' } });
    return { signal, out, r };
  }));
  for (const { signal, out, r } of runs) {
    assert.is(r.code, { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 }[signal], `${signal}: ${r.stderr}`);
    assert.equal(stderrLines(r), [`p2calib: interrupted (${signal})`]);
    assert.equal(readdirSync(out).sort(), FILES, 'no temp file, no lock');
    for (const f of FILES) assert.ok(readFileSync(join(out, f)).equals(readFileSync(path('reference', f))), `${signal}: ${f}`);
  }
});

test.run();

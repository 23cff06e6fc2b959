/**
 * Interrupted calibrations: the CLI is killed with SIGINT, SIGTERM and SIGKILL at several points
 * (starting up, calibrating, writing its files over an older calibration) and the --out folder
 * must then hold nothing, the old files, or the complete new ones (each JSON parsed, each ONNX
 * decoded, compared with an uninterrupted run): never a partial file. After SIGINT/SIGTERM no
 * temp file (nor the folder's lock) remains and the set is whole (all old or all new); after
 * SIGKILL a hidden temp file and the lock may remain, and the next run removes them.
 */
import type { ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromTextFormat, tidlQuantParamsType } from '../sdk/export/tidl-proto.js';
import { decodeModel } from '../sdk/onnx/decode.js';
import { runCli, stderrLines, type CliResult } from './cli-run.js';
import { buildModel, node, randomTensor } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'p2calib-interrupt-'));
const MODEL = join(dir, 'model.onnx');
const IMAGES = join(dir, 'images');
const FILES = ['calibration.json', 'model.calibrated.onnx', 'model.qdq.onnx', 'tidl_quant_params.prototxt'];
const calibrate = (out: string, ...extra: string[]) =>
  ['calibrate', MODEL, '--images', IMAGES, '--preprocess', 'imagenet', '--size', '16x16', '--json', '--out', out, ...extra];

type Contents = Record<string, string>;
/** An uninterrupted run (new) and an older calibration with another preset (old). */
const reference: { new: Contents; old: Contents } = { new: {}, old: {} };
let runMs = 0;

/** A file's bytes (a calibration is deterministic), once parsing (the JSON) or decoding (the
 *  ONNX) has shown the file complete. */
function contents(path: string): string {
  const bytes = readFileSync(path);
  if (path.endsWith('.json')) JSON.parse(bytes.toString('utf8'));
  else if (path.endsWith('.prototxt')) fromTextFormat(tidlQuantParamsType(), bytes.toString('utf8'));
  else decodeModel(bytes);
  return bytes.toString('base64');
}

function snapshot(out: string): Contents {
  return Object.fromEntries(FILES.map((f) => [f, contents(join(out, f))]));
}

test.before(async () => {
  // A large Gemm makes files of 8 MB (float) and 2 MB (QDQ), which take a while to write.
  writeFileSync(MODEL, buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 16, 16] }], outputs: [{ name: 'y' }],
    nodes: [node('Conv', ['x', 'w', 'b'], ['c'], { pads: [1, 1, 1, 1] }), node('Relu', ['c'], ['r']), node('Flatten', ['r'], ['f']), node('Gemm', ['f', 'g', 'gb'], ['y'], { transB: 1 })],
    initializers: { w: randomTensor([8, 3, 3, 3], 1), b: randomTensor([8], 2), g: randomTensor([1024, 2048], 3, -0.05, 0.05), gb: randomTensor([1024], 4) },
  }));
  mkdirSync(IMAGES);
  for (let i = 0; i < 2; i++) {
    const png = await sharp({ create: { width: 20, height: 20, channels: 3, background: { r: 60 * i, g: 100, b: 200 - 50 * i } } }).png().toBuffer();
    writeFileSync(join(IMAGES, `${i}.png`), png);
  }
  const started = Date.now();
  const r = await runCli(calibrate(join(dir, 'new')));
  runMs = Date.now() - started;
  assert.is(r.code, 0, r.stderr);
  reference.new = snapshot(join(dir, 'new'));
  assert.is((await runCli(calibrate(join(dir, 'old'), '--preset', 'simple'))).code, 0);
  reference.old = snapshot(join(dir, 'old'));
  assert.not.equal(reference.old['model.qdq.onnx'], reference.new['model.qdq.onnx']);
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

type Point = 'starting' | 'calibrating' | 'writing';

/** Run a calibration into `out` and send `signal` at `point`. */
function interrupted(out: string, signal: NodeJS.Signals, point: Point): Promise<CliResult> {
  const overOld = existsSync(out);
  return runCli(calibrate(out, ...(overOld ? ['--force'] : [])), (child: ChildProcess) => {
    const kill = () => { if (child.exitCode === null) child.kill(signal); };
    if (point === 'writing') {
      // The first temp file in the folder: the writes have begun.
      const watcher = watch(out, (_event, name) => {
        if (!String(name).endsWith('.tmp')) return;
        kill();
        watcher.close();
      });
      child.on('close', () => watcher.close());
    } else {
      const timer = setTimeout(kill, point === 'starting' ? 100 : runMs / 2);
      child.on('close', () => clearTimeout(timer));
    }
  });
}

/** What the folder holds: 'nothing', 'old', 'new', or a mix (SIGKILL only); asserts that every
 *  file is complete and, after SIGINT/SIGTERM, that no temp file remains. */
function state(out: string, signal: NodeJS.Signals): string {
  const all = existsSync(out) ? readdirSync(out) : [];
  // The folder's lock goes with the process, unless SIGKILL gives it no chance.
  if (signal !== 'SIGKILL') assert.not.ok(all.includes('.p2calib.lock'), `lock left after ${signal}`);
  const names = all.filter((n) => n !== '.p2calib.lock');
  const temps = names.filter((n) => n.endsWith('.tmp'));
  if (signal !== 'SIGKILL') assert.equal(temps, [], `temp files left after ${signal}`);
  assert.ok(temps.every((n) => n.startsWith('.')), 'temp files are hidden');
  const found = names.filter((n) => !n.endsWith('.tmp')).sort();
  assert.ok(found.every((n) => FILES.includes(n)), found.join());
  const each = found.map((f) => {
    const c = contents(join(out, f));
    const which = c === reference.new[f] ? 'new' : c === reference.old[f] ? 'old' : undefined;
    assert.ok(which, `${f} is neither the old nor the new file`);
    return which;
  });
  const kinds = [...new Set(each)];
  if (found.length && signal !== 'SIGKILL') assert.ok(found.length === FILES.length && kinds.length === 1, `a whole set after ${signal}: ${found} ${each}`);
  const what = !found.length ? 'nothing' : kinds.length === 1 && found.length === FILES.length ? kinds[0]! : `mixed (${found.map((f, i) => `${f} ${each[i]}`).join(', ')})`;
  return temps.length ? `${what} + stray ${temps.join(', ')}` : what;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
  test(`${signal} while starting, calibrating and writing over old files: old or complete new files only`, async () => {
    const seen: string[] = [];
    for (const point of ['starting', 'calibrating', 'writing'] as const) {
      const out = join(dir, `${signal}-${point}`);
      if (point === 'writing') cpSync(join(dir, 'old'), out, { recursive: true });
      const r = await interrupted(out, signal, point);
      const s = state(out, signal);
      seen.push(`${point}: ${s} (exit ${r.code ?? r.signal})`);
      if (r.code === 0) {
        assert.is(s, 'new');
      } else if (signal !== 'SIGKILL' && r.code !== null) {
        // Interrupted by the handler: one line, the exit code of the signal.
        assert.is(r.code, signal === 'SIGINT' ? 130 : 143);
        assert.equal(stderrLines(r), [`p2calib: interrupted (${signal})`]);
      }
      if (point === 'writing' && signal !== 'SIGKILL') assert.ok(s === 'old' || s === 'new', s);
      // The next run over the same folder completes and removes any temp file a SIGKILL left.
      if (signal === 'SIGKILL' && point === 'writing') {
        const again = await runCli(calibrate(out, '--force'));
        assert.is(again.code, 0, again.stderr);
        assert.equal(readdirSync(out).sort(), FILES);
        assert.is(state(out, 'SIGINT'), 'new');
      }
    }
    console.log(`  ${signal}: ${seen.join('; ')}`);
  });
}

test.run();

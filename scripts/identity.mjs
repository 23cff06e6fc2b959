// Byte-identity check for refactors that must not change any output: calibrates a few shared
// models with the CLI (few images, so it takes minutes, not hours), runs one image of each in
// fixed point with trace files, and prints the SHA-256 of every file written.
//
//   node scripts/identity.mjs [--record FILE] [--check FILE] [--keep DIR]
//
// --record writes the hashes as JSON; --check compares with a recorded FILE and exits 1 naming
// every file that differs. Run `npm run build` first: it runs dist/cli/main.js. Needs
// /work/shared/assets (../shared/assets from the project root).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const ASSETS = resolve(ROOT, '../shared/assets');
const CLI = join(ROOT, 'dist/cli/main.js');
const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
};
if (!existsSync(ASSETS)) {
  console.error(`identity: no shared assets at ${ASSETS}`);
  process.exit(2);
}

const imagenet = join(ASSETS, 'images/imagenet-sample');
const coco = join(ASSETS, 'images/coco128-val/images');
// Each case runs a different part of the arithmetic: 8 and 16 bits, the three presets, both
// bias-calibration variants, MatMul-free detection heads and a dynamic-shape model.
const CASES = [
  { name: 'mobilenetv2', model: 'mobilenetv2-12-fp32.onnx', images: imagenet, flags: ['--preprocess', 'imagenet', '--preset', 'advanced', '--iterations', '2', '--batch', '2'] },
  { name: 'mobilenetv2-16', model: 'mobilenetv2-12-fp32.onnx', images: imagenet, flags: ['--preprocess', 'imagenet', '--bits', '16', '--preset', 'advanced-dw'] },
  { name: 'yolox-nano', model: 'yolox-nano.onnx', images: coco, flags: ['--preprocess', 'yolox', '--preset', 'advanced-dw', '--bias-calibration', 'devkit'] },
  { name: 'ultraface', model: 'ultraface-rfb-320.onnx', images: coco, flags: ['--preprocess', 'ultraface', '--preset', 'simple', '--sixteen-bit', 'Conv_0'] },
  { name: 'ppocrv4-det', model: 'ppocrv4-det.onnx', images: coco, flags: ['--preprocess', join(ASSETS, 'preprocess/ppocrv4-det.json'), '--input-shape', '1,3,480,640'] },
];
const LIMIT = 4;

const work = flag('--keep') ?? mkdtempSync(join(tmpdir(), 'p2calib-identity-'));
const sha = (data) => createHash('sha256').update(data).digest('hex');
const files = (dir) => readdirSync(dir).sort().flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)).map((g) => join(f, g)) : [f]));

function cli(argv) {
  const res = spawnSync(process.execPath, [CLI, ...argv], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (res.status !== 0) {
    console.error(`identity: p2calib ${argv.join(' ')} failed (${res.status}):\n${res.stderr}`);
    process.exit(1);
  }
  return res.stdout;
}

const hashes = {};
for (const c of CASES) {
  const t0 = Date.now();
  const out = join(work, c.name), traces = join(work, `${c.name}-trace`);
  const model = join(ASSETS, 'models', c.model);
  const summary = JSON.parse(cli(['calibrate', model, '--images', c.images, '--limit', String(LIMIT), '--out', out, '--force', '--json', '--workers', '2', ...c.flags]));
  // Timings, the worker count and the output paths are the summary's only run-dependent fields.
  delete summary.seconds;
  delete summary.workers;
  delete summary.files;
  hashes[`${c.name}/summary.json`] = sha(JSON.stringify(summary));
  for (const f of files(out)) hashes[`${c.name}/${f}`] = sha(readFileSync(join(out, f)));
  const image = join(c.images, readdirSync(c.images).sort()[0]);
  cli(['simulate', model, '--calibration', out, '--image', image, '--trace-dir', traces, '--force', '--json']);
  for (const f of files(traces)) hashes[`${c.name}-trace/${f}`] = sha(readFileSync(join(traces, f)));
  console.error(`identity: ${c.name} ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
if (!flag('--keep')) rmSync(work, { recursive: true, force: true });

// One hash over all the files, to quote in a report.
const all = sha(Object.entries(hashes).map(([k, v]) => `${v}  ${k}\n`).join(''));
const record = flag('--record'), check = flag('--check');
if (record) writeFileSync(record, `${JSON.stringify({ all, files: hashes }, null, 1)}\n`);
if (check) {
  const want = JSON.parse(readFileSync(check, 'utf8')).files;
  const keys = [...new Set([...Object.keys(want), ...Object.keys(hashes)])].sort();
  const diff = keys.filter((k) => want[k] !== hashes[k]);
  for (const k of diff) console.log(`differs: ${k}${!(k in hashes) ? ' (not written)' : !(k in want) ? ' (new)' : ''}`);
  console.log(`identity: ${keys.length - diff.length} of ${keys.length} files identical to ${relative(process.cwd(), check)}; all ${all}`);
  if (diff.length) process.exitCode = 1;
} else console.log(`identity: ${Object.keys(hashes).length} files, all ${all}`);

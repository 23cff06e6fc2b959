// The README's robustness table (issue 14): every shared model calibrated at every preset in 8
// and 16 bits, then, on images held apart from calibration, its fixed-point output and the QDQ
// export in onnxruntime-node (the form TIDL imports, ONNX Runtime's default optimizations)
// against float, and the task's own agreement figure. Long: an npm script, not a test.
//   npm run robustness                     print the table
//   npm run robustness -- --write          also replace the table in README.md
//   npm run robustness -- ppocrv4-rec      only some models (names as in MODELS)
//   npm run robustness -- --bits 16        only one bit width
//   npm run robustness -- --keep-clip-bounds --equalize   calibration options for every row
// (--bits and the options print only: the README table is the defaults' at both widths.)
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { loadModel } from '../dist/sdk/model.js';
import { calibrateImages } from '../dist/sdk/node/calibrate-images.js';
import { A, MODELS, prepare, scorer } from './shared-models.mjs';

const args = process.argv.slice(2);
const write = args.includes('--write');
const bitsAt = args.indexOf('--bits');
const onlyBits = bitsAt < 0 ? undefined : Number(args[bitsAt + 1]);
const extra = { ...(args.includes('--keep-clip-bounds') ? { keepClipBounds: true } : {}), ...(args.includes('--equalize') ? { equalize: true } : {}) };
if ((onlyBits !== undefined && onlyBits !== 8 && onlyBits !== 16) || (write && (onlyBits || Object.keys(extra).length))) {
  console.error('--bits takes 8 or 16; --bits, --keep-clip-bounds and --equalize only print (the README table is the defaults\' at both widths)');
  process.exit(2);
}
const names = args.filter((a, i) => !a.startsWith('--') && (bitsAt < 0 || i !== bitsAt + 1));
const CONFIGS = ['simple', 'advanced', 'advanced-dw'].flatMap((preset) => [8, 16].filter((b) => !onlyBits || b === onlyBits).map((bits) => ({ preset, bits })));
const status = (text) => process.stderr.isTTY && process.stderr.write(`\r${text}\x1b[K`);
const rows = [];
const started = Date.now();

for (const name of names.length ? names : Object.keys(MODELS)) {
  const m = MODELS[name];
  if (!m) {
    console.error(`unknown model "${name}" (models: ${Object.keys(MODELS).join(', ')})`);
    process.exit(2);
  }
  const model = await loadModel(readFileSync(join(A, 'models', m.file)), { inputShape: m.shape });
  const { spec, calibration, inputs, floats, output } = await prepare(m, model);
  const row = { name, m, results: [] };
  for (const c of CONFIGS) {
    const label = `${c.preset} ${c.bits}-bit`;
    status(`${name} ${label}: calibrating`);
    let cal;
    try {
      cal = await calibrateImages(model, calibration, spec, { preset: c.preset, bits: c.bits, ...extra });
    } catch (e) {
      row.results.push({ ...c, error: e.message });
      console.error(`\n${name} ${label}: ${e.message}`);
      continue;
    }
    const session = await ort.InferenceSession.create(cal.toQdqOnnx(), { logSeverityLevel: 3 });
    const scores = { fixed: scorer(m), qdq: scorer(m) };
    for (const [i, x] of inputs.entries()) {
      status(`${name} ${label}: evaluating ${i + 1}/${inputs.length}`);
      const res = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, m.shape) });
      scores.fixed.add(floats[i][output], (await cal.run(x))[output]);
      scores.qdq.add(floats[i][output], res[output].data);
    }
    await session.release();
    const [fixed, qdq] = [scores.fixed.result(), scores.qdq.result()];
    const r = { ...c, fixed: fixed.sqnr, qdq: qdq.sqnr, agreeFixed: fixed.figure, agreeQdq: qdq.figure, verdicts: cal.table.diagnostics.verdicts.length };
    row.results.push(r);
    status('');
    console.error(`${name} ${label}: fixed ${r.fixed.toFixed(1)} dB, QDQ ${r.qdq.toFixed(1)} dB, ${m.figure} ${r.agreeFixed?.toFixed(1)} (QDQ ${r.agreeQdq?.toFixed(1)}), ${r.verdicts} verdicts`);
  }
  rows.push(row);
}

const f = (v) => (v === undefined ? '–' : v === Infinity ? '∞' : v.toFixed(1));
const cell = (row, bits, key) => ['simple', 'advanced', 'advanced-dw'].map((p) => {
  const r = row.results.find((x) => x.preset === p && x.bits === bits);
  return !r || r.error ? '✗' : f(r[key]);
}).join(' / ');
const ok = (row, bits) => ['simple', 'advanced', 'advanced-dw'].map((p) => (row.results.find((x) => x.preset === p && x.bits === bits && !x.error) ? '✓' : '✗')).join(' ');
const table = [
  '| model [input] (calibration / evaluation images) | calibrates 8-bit | calibrates 16-bit | output SQNR fixed vs float, 8-bit | 16-bit | QDQ in onnxruntime vs float, 8-bit | 16-bit | task figure | fixed point, 8-bit | 16-bit | QDQ, 8-bit | 16-bit |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.m.file} [${r.m.shape.slice(1).join('×')}] (${r.m.calibrate} / ${r.m.evaluate}) | ${ok(r, 8)} | ${ok(r, 16)} | ${cell(r, 8, 'fixed')} | ${cell(r, 16, 'fixed')} | ` +
    `${cell(r, 8, 'qdq')} | ${cell(r, 16, 'qdq')} | ${r.m.figure} | ${cell(r, 8, 'agreeFixed')} | ${cell(r, 16, 'agreeFixed')} | ${cell(r, 8, 'agreeQdq')} | ${cell(r, 16, 'agreeQdq')} |`),
].join('\n');
console.log(table);
if (write) {
  const readme = readFileSync('README.md', 'utf8');
  const begin = '<!-- robustness:begin -->', end = '<!-- robustness:end -->';
  if (!readme.includes(begin)) {
    console.error('README.md has no robustness markers');
    process.exit(1);
  }
  const minutes = ((Date.now() - started) / 60000).toFixed(0);
  const stamp = `Produced by \`npm run robustness -- --write\` on ${new Date().toISOString().slice(0, 10)} (${minutes} min). Each cell: simple / advanced / advanced-dw.`;
  writeFileSync('README.md', readme.replace(new RegExp(`${begin}[\\s\\S]*${end}`), `${begin}\n${stamp}\n\n${table}\n${end}`));
}

/**
 * The calibration report: one self-contained HTML file that Chromium renders without fetching
 * anything, with the SQNR chart, a histogram per tensor (range and clip drawn), per-channel weight
 * ranges per layer, the float-vs-fixed scatter and the per-layer table; the CSV has one row per
 * tensor; `p2calib report` rebuilds it from a calibration folder alone.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sdk from '../sdk/index.js';
import { layersCsv, reportData, reportHtml } from '../sdk/report.js';
import { runCli } from './cli-run.js';
import { rng, smallCnn } from './helpers.js';
import { HAVE_CHROMIUM, launchChromium } from './web-driver.js';

async function fixture() {
  const m = await sdk.loadModel(smallCnn());
  const r = rng(6);
  const samples = Array.from({ length: 4 }, () => Float32Array.from({ length: 3 * 12 * 12 }, () => r(-1, 2)));
  const cal = await sdk.calibrate(m, samples, { preset: 'advanced-dw' });
  return { cal, samples };
}

test('report: the CSV has one row per tensor with its format, range, clip and SQNR', async () => {
  const { cal } = await fixture();
  const lines = layersCsv(cal.table).trim().split('\n');
  assert.is(lines.length, Object.keys(cal.table.tensors).length + 1);
  const head = lines[0].split(',');
  const conv = lines.find((l) => l.startsWith('r1,'))!.split(',');
  assert.is(conv[head.indexOf('layer')], 'Conv_c1');
  assert.is(Number(conv[head.indexOf('sqnr')]), cal.table.tensors.r1.sqnr);
  assert.is(Number(conv[head.indexOf('clipMax')]), cal.table.tensors.r1.clip[1]);
});

(HAVE_CHROMIUM ? test : test.skip)('report: self-contained HTML rendered by Chromium with every chart (screenshot in the temp folder)', async () => {
  const { cal, samples } = await fixture();
  const html = reportHtml(await reportData(cal, samples, 'small CNN'));
  assert.not.match(html, /<script|https?:\/\//, 'no script, no link out');
  const dir = mkdtempSync(join(tmpdir(), 'p2calib-report-'));
  const chromium = await launchChromium({ width: 1200, height: 1600 });
  try {
    const file = join(dir, 'report.html');
    writeFileSync(file, html);
    const requests: string[] = [];
    chromium.page.on('request', (r) => requests.push(r.url()));
    await chromium.page.goto(pathToFileURL(file).href);
    assert.equal(requests, [pathToFileURL(file).href], 'nothing fetched but the file itself');
    const count = (sel: string) => chromium.page.locator(sel).count();
    const t = cal.table;
    assert.is(await count('#sqnr + p + svg.chart rect'), Object.values(t.tensors).filter((x) => x.sqnr !== undefined).length);
    assert.is(await count('.hist svg'), Object.keys(t.tensors).length);
    assert.ok(await count('.hist .bars rect') > 20);
    assert.is(await count('.hist line.clip'), 2 * Object.keys(t.tensors).length);
    assert.is(await count('.weights svg'), Object.keys(t.layers).length);
    const dw = t.layers['Conv_c2'];
    assert.is(await chromium.page.locator('.weights').nth(1).locator('.bars rect').count(), dw.bias.length, 'one bar per depthwise channel');
    assert.ok(await count('.scatter circle') > 10);
    assert.is(await count('#table + table tr'), Object.keys(t.tensors).length + 1);
    assert.match(await chromium.page.textContent('#diagnostics + *') ?? '', /diagnostics|layer/i);
    await chromium.page.screenshot({ path: join(tmpdir(), 'p2calib-report.png'), fullPage: false });
  } finally {
    await chromium.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('p2calib report CAL_DIR: rebuilt from the folder (model and images as recorded), with --csv; --report on calibrate', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'p2calib-report-cli-'));
  try {
    const r = rng(8);
    for (let i = 0; i < 3; i++) {
      const px = Buffer.from(Array.from({ length: 16 * 16 * 3 }, () => Math.floor(r(0, 256))));
      await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(join(dir, `img${i}.png`));
    }
    writeFileSync(join(dir, 'm.onnx'), smallCnn());
    const pre = ['--preprocess', 'imagenet', '--size', '12x12', '--short-side', '14'];
    const cal = await runCli(['calibrate', join(dir, 'm.onnx'), '--images', dir, '--out', join(dir, 'cal'), ...pre, '--workers', '1', '--report', join(dir, 'r1.html')]);
    assert.is(cal.code, 0, cal.stderr);
    const rep = await runCli(['report', join(dir, 'cal'), '--csv', join(dir, 'layers.csv')]);
    assert.is(rep.code, 0, rep.stderr);
    assert.match(rep.stdout, /wrote .*report\.html and .*layers\.csv/);
    const html = readFileSync(join(dir, 'cal/report.html'), 'utf8');
    assert.is(html, readFileSync(join(dir, 'r1.html'), 'utf8'), 'the same report from calibrate --report and p2calib report');
    assert.match(readFileSync(join(dir, 'layers.csv'), 'utf8'), /^tensor,layer,op,bits/);
    const again = await runCli(['report', join(dir, 'cal')]);
    assert.is(again.code, 2);
    assert.match(again.stderr, /^p2calib: error: .*report\.html exists; pass --force/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

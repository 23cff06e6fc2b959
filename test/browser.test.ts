/**
 * The browser: the SDK bundle is self-contained and free of Node code, and the calibration page,
 * run in headless Chromium, produces the same calibration.json and ONNX bytes as the Node SDK.
 */
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sdk from '../sdk/index.js';
import { imageIdentities } from '../sdk/node/calibrate-images.js';
import { decodeImage } from '../sdk/node/images.js';
import { runCli } from './cli-run.js';
import { ASSETS, HAVE_ASSETS, MODELS, ROOT, buildModel, node, rng, smallCnn } from './helpers.js';
import { HAVE_CHROMIUM, CHROMIUM, calibrateInPage, download, launchChromium, startServer, type PageRun } from './web-driver.js';

const BUNDLES = ['dist/browser/p2calib.js', 'dist/browser/p2calib-worker.js'];

test('browser bundle: self-contained ESM with no Node built-ins, sharp or Node-only SDK modules', () => {
  const meta = JSON.parse(readFileSync(join(ROOT, 'dist/browser/meta.json'), 'utf8')) as {
    inputs: Record<string, unknown>; outputs: Record<string, { imports: unknown[] }>;
  };
  for (const [file, out] of Object.entries(meta.outputs)) assert.equal(out.imports, [], `${file} imports nothing`);
  const inputs = Object.keys(meta.inputs);
  assert.ok(inputs.includes('sdk/browser/images.ts') && inputs.includes('sdk/engine/kernels.wasm.ts'));
  assert.equal(inputs.filter((p) => p.startsWith('sdk/node/') || p.startsWith('cli/') || /^node:|node_modules\/(sharp|onnxruntime)/.test(p)), []);
  for (const f of BUNDLES) {
    const text = readFileSync(join(ROOT, f), 'utf8');
    for (const pattern of [/\brequire\(\s*["'`]/, /\bimport\s*\(/, /^\s*import\b/m, /["'`]node:/, /\bworker_threads\b/, /\bsharp\b/]) {
      assert.not.match(text, pattern, `${f}: ${pattern}`);
    }
  }
});

test('browser bundle: in Node it loads and calibrates to the same bytes as the Node SDK', async () => {
  const bundle = (await import(pathToFileURL(join(ROOT, BUNDLES[0])).href)) as typeof import('../sdk/browser.js');
  for (const name of ['loadModel', 'calibrate', 'loadCalibration', 'activationHistograms', 'calibrateImageSet', 'decodeImage', 'CalibrationWorker', 'parseSpec']) {
    assert.type((bundle as Record<string, unknown>)[name], 'function', name);
  }
  const bytes = smallCnn();
  const r = rng(5);
  const samples = Array.from({ length: 3 }, () => Float32Array.from({ length: 3 * 12 * 12 }, () => r(-2, 2)));
  const [a, b] = await Promise.all([
    bundle.loadModel(bytes, {}).then((m) => bundle.calibrate(m, samples)),
    sdk.loadModel(bytes, {}).then((m) => sdk.calibrate(m, samples)),
  ]);
  assert.equal(a.toQdqOnnx(), b.toQdqOnnx());
});

/** The page's images: real JPEGs as they are (Chromium and sharp give the same pixels, colour
 *  profiles included), or generated PNGs without the assets. */
async function pageImages(dir: string): Promise<{ model: string; images: string[]; run: Omit<PageRun, 'model' | 'images'>; job: sdk.ImageCalibrationJob }> {
  const images: string[] = [];
  if (HAVE_ASSETS) {
    const folder = join(ASSETS, 'images/imagenet-sample');
    for (const f of readdirSync(folder).sort().slice(0, 4)) {
      images.push(join(dir, f));
      copyFileSync(join(folder, f), join(dir, f));
    }
    return {
      model: join(MODELS, 'mobilenetv2-12-fp32.onnx'), images,
      run: { preset: 'advanced', preprocess: 'imagenet', inputShape: '1,3,224,224' },
      job: { inputShape: [1, 3, 224, 224], preprocess: sdk.parseSpec({ preset: 'imagenet' }), options: { preset: 'advanced', bits: 8, iterations: 1, batchSize: 8 } },
    };
  }
  const r = rng(11);
  for (let i = 0; i < 4; i++) {
    const [w, h] = [40 + 4 * i, 36];
    const data = Buffer.alloc(w * h * 3);
    const phase = r(0, 6);
    for (let p = 0; p < w * h; p++) {
      const [x, y] = [p % w, Math.floor(p / w)];
      for (let c = 0; c < 3; c++) data[p * 3 + c] = Math.round(127.5 + 120 * Math.sin(x / (3 + c) + y / (5 - c) + phase) * (0.6 + 0.4 * r()));
    }
    const out = join(dir, `img${i}.png`);
    await sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toFile(out);
    images.push(out);
  }
  const model = join(dir, 'small.onnx');
  writeFileSync(model, smallCnn());
  return {
    model, images,
    run: { preset: 'advanced', preprocess: 'imagenet', fields: { shortSide: '14' }, inputShape: '1,3,12,12' },
    job: {
      inputShape: [1, 3, 12, 12], preprocess: sdk.parseSpec({ preset: 'imagenet', width: 12, height: 12, shortSide: 14 }),
      options: { preset: 'advanced', bits: 8, iterations: 1, batchSize: 8 },
    },
  };
}

const browserTest = HAVE_CHROMIUM ? test : test.skip;
if (!HAVE_CHROMIUM) console.log(`\n  (skipping the browser page test: no Chromium at ${CHROMIUM}; .ci/run installs it with apt-get)`);

browserTest('browser: the page calibrates in headless Chromium; calibration.json and model.qdq.onnx match the Node SDK byte for byte', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'p2calib-browser-'));
  const server = await startServer();
  const chromium = await launchChromium();
  try {
    const input = await pageImages(dir);
    const { page } = chromium;
    // The images go in as a folder, in path order (what the reference below uses), as a user drops
    // one; two Web Workers calibrate them (the reference: one worker, in Node).
    const { progressEvents } = await calibrateInPage(page, server.url, {
      model: input.model, images: dir, ...input.run, workers: 2,
      // MobileNetV2 takes seconds: the page answers while the worker calibrates.
      whileRunning: async (p) => { if (HAVE_ASSETS) assert.is(await p.evaluate(() => document.body.dataset.state), 'running'); },
    });
    // The reference: the Node SDK in this thread, one worker, sharp decoding the same files, with
    // the provenance the CLI records for a folder (names under it, content hashes).
    const job = { ...input.job, images: imageIdentities(input.images, dir), imageRoot: basename(dir), modelFile: basename(input.model) };
    const ref = await sdk.calibrateImageSet(readFileSync(input.model), input.images, job, { decode: (f) => decodeImage(f) });
    // Progress reached the page during every stage: two calibration passes, two histogram passes
    // and the agreement pass, one event per image.
    assert.is(progressEvents, 5 * input.images.length);

    const tensors = Object.keys(ref.table.tensors);
    assert.is(await page.locator('#layers tbody tr').count(), tensors.length);
    const sqnrCells = await page.locator('#layers tbody tr td:last-child').allTextContents();
    assert.equal(sqnrCells.map(Number).map((v) => v.toFixed(1)), tensors.map((t) => ref.table.tensors[t].sqnr!.toFixed(1)));
    assert.match(await page.textContent('#summary') ?? '', `top-1 agreement: ${ref.agreement!.top1.toFixed(1)} % on ${input.images.length} images`);
    assert.match(await page.textContent('#image-info') ?? '', `${input.images.length} images`);

    // Pick a layer from the table: its histogram is drawn, with the clip.
    const layer = Object.values(ref.table.layers)[1];
    await page.click(`#layers tbody tr[data-tensor="${layer.output}"]`);
    await page.waitForFunction((t) => document.getElementById('hist-canvas')!.dataset.tensor === t, layer.output);
    const drawn = await page.evaluate(() => {
      const c = document.getElementById('hist-canvas') as HTMLCanvasElement;
      const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let bars = 0, clip = 0;
      for (let i = 0; i < px.length; i += 4) {
        if (px[i] === 0x2f && px[i + 1] === 0x6f && px[i + 2] === 0xb3) bars++;
        if (px[i] === 0xc0 && px[i + 1] === 0x39 && px[i + 2] === 0x2b) clip++;
      }
      return { bars, clip, selected: document.querySelector('#layers tr.selected')?.getAttribute('data-tensor') };
    });
    assert.ok(drawn.bars > 200, `histogram bars: ${drawn.bars} pixels`);
    assert.ok(drawn.clip > 150, `clip lines: ${drawn.clip} pixels`);
    assert.is(drawn.selected, layer.output);
    const h = ref.histograms[layer.output];
    assert.ok(h.counts.reduce((a, b) => a + b, 0) > 0);

    const json = (await download(page, '#download-json')).toString('utf8');
    const qdq = await download(page, '#download-qdq');
    const calibrated = await download(page, '#download-calibrated');
    assert.ok(json === ref.json, 'calibration.json: same bytes as the Node SDK');
    const provenance = JSON.parse(json).provenance;
    assert.equal(provenance.images.files.map((f: { name: string }) => f.name), input.images.map((f) => basename(f)));
    assert.equal(provenance.images.root, basename(dir));
    assert.equal(provenance.preprocessing, ref.spec);
    assert.ok(Buffer.from(ref.qdq).equals(qdq), 'model.qdq.onnx: same bytes as the Node SDK');
    assert.ok(Buffer.from(ref.calibrated).equals(calibrated), 'model.calibrated.onnx: same bytes as the Node SDK');

    // A file that is not a model: the worker's P2Error reaches the page, in a box that reads as an
    // error; the old results go and Calibrate stays off until a model loads.
    await page.setInputFiles('#model-file', input.images[0]);
    await page.waitForFunction(() => document.body.dataset.state === 'error');
    assert.match(await page.textContent('#model-info') ?? '', /^\S+\.(png|JPEG) cannot be calibrated: [^\n]*(ONNX|protobuf)[^\n]*\nChoose an ONNX model file\.$/i);
    const look = await page.evaluate(() => {
      const s = getComputedStyle(document.getElementById('model-info')!);
      return { size: parseFloat(s.fontSize), weight: Number(s.fontWeight), color: s.color, background: s.backgroundColor };
    });
    assert.ok(look.size >= 15 && look.weight >= 600, JSON.stringify(look));
    assert.is(look.color, 'rgb(142, 29, 18)');
    assert.is(look.background, 'rgb(253, 236, 234)');
    assert.ok(await page.locator('#results').isHidden());
    assert.is(await page.locator('#layers tbody tr').count(), 0);
    assert.ok(await page.locator('#calibrate').isDisabled());
    assert.match(await page.textContent('#status') ?? '', /is not a model p2calib can read; choose an ONNX model/);
    await page.setInputFiles('#model-file', input.model);
    await page.waitForFunction(() => document.body.dataset.state === 'ready');
    assert.ok(await page.locator('#calibrate').isEnabled());
    assert.not.ok(await page.locator('#model-info.error').count());
  } finally {
    await chromium.close();
    server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

browserTest('browser: a preprocessing that does not fit the model is refused as the CLI refuses it, in the page\'s terms', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'p2calib-browser-fit-'));
  const server = await startServer();
  const chromium = await launchChromium();
  try {
    // An NCHW model of fixed size 10x12, an NHWC one of 8x8, and one with dynamic height and width.
    const pool = (dims: (number | string)[], nhwc: boolean) => buildModel({
      inputs: [{ name: 'x', dims }], outputs: [{ name: 'y' }],
      nodes: nhwc ? [node('Transpose', ['x'], ['t'], { perm: [0, 3, 1, 2] }), node('GlobalAveragePool', ['t'], ['y'])] : [node('GlobalAveragePool', ['x'], ['y'])],
    });
    const nchw = join(dir, 'nchw.onnx'), nhwc = join(dir, 'nhwc.onnx'), dynamic = join(dir, 'dynamic.onnx');
    writeFileSync(nchw, pool([1, 3, 12, 10], false));
    writeFileSync(nhwc, pool([1, 8, 8, 3], true));
    writeFileSync(dynamic, pool(['N', 3, 'H', 'W'], false));
    const image = join(dir, 'a.png');
    await sharp({ create: { width: 16, height: 16, channels: 3, background: '#808080' } }).png().toFile(image);
    const { page } = chromium;
    await page.goto(server.url);
    await page.setInputFiles('#image-files', image);
    const load = async (file: string) => {
      await page.setInputFiles('#model-file', file);
      await page.waitForFunction(() => /input /.test(document.getElementById('model-info')!.textContent ?? ''));
    };
    const view = () => page.evaluate(() => ({
      height: (document.getElementById('pp-height') as HTMLInputElement).value,
      width: (document.getElementById('pp-width') as HTMLInputElement).value,
      shape: (document.getElementById('input-shape') as HTMLInputElement).value,
      problem: document.getElementById('pp-error')!.hidden ? '' : document.getElementById('pp-error')!.textContent,
      status: document.getElementById('status')!.textContent ?? '',
      disabled: (document.getElementById('calibrate') as HTMLButtonElement).disabled,
    }));
    // The CLI's own answer to the same preprocessing, for the same message.
    const cli = async (model: string, ...flags: string[]) => {
      const r = await runCli(['calibrate', model, '--images', image, '--out', join(dir, 'out'), '--force', ...flags]);
      assert.is(r.code, 2, r.stderr);
      return r.stderr.replace(/^p2calib: error: /, '').trim();
    };

    await load(nchw);
    await page.selectOption('#pp-preset', 'deeplab');
    let v = await view();
    // The model's own height and width, read at its layout (not 3, its channels).
    assert.equal([v.height, v.width, v.shape], ['12', '10', '1,3,12,10']);
    assert.is(v.problem, await cli(nchw, '--preprocess', 'deeplab', '--size', '10x12'));
    assert.match(v.problem, /is NCHW .* set the layout to NCHW$/);
    assert.ok(v.disabled);
    assert.is(v.status, 'The preprocessing does not fit the model: see the red box under Preprocessing.');
    await page.selectOption('#pp-layout', 'NCHW');
    v = await view();
    assert.equal([v.problem, v.disabled], ['', false]);
    await page.fill('#pp-width', '20');
    await page.dispatchEvent('#pp-width', 'change');
    v = await view();
    // What the user typed stays; the page says what to change.
    assert.is(v.width, '20');
    assert.is(v.problem, await cli(nchw, '--preprocess', 'deeplab', '--layout', 'NCHW', '--size', '20x12'));
    assert.match(v.problem, /set the width and height to 10x12$/);
    assert.ok(v.disabled);

    await load(nhwc);
    await page.selectOption('#pp-preset', 'imagenet');
    v = await view();
    assert.equal([v.height, v.width, v.shape], ['8', '8', '1,8,8,3']);
    assert.is(v.problem, await cli(nhwc, '--preprocess', 'imagenet', '--size', '8x8'));
    assert.match(v.problem, /is NHWC .* set the layout to NHWC$/);
    await page.selectOption('#pp-preset', 'deeplab');
    v = await view();
    assert.equal([v.height, v.width, v.problem, v.disabled], ['8', '8', '', false]);

    // Dynamic height and width: the form's size gives them; the layout is still the model's.
    await load(dynamic);
    v = await view();
    assert.equal([v.height, v.width, v.shape], ['8', '8', '1,3,8,8']);
    assert.is(v.problem, await cli(dynamic, '--preprocess', 'deeplab', '--size', '8x8'));
    await page.selectOption('#pp-layout', 'NCHW');
    await page.fill('#pp-width', '64');
    await page.dispatchEvent('#pp-width', 'change');
    v = await view();
    assert.equal([v.shape, v.problem, v.disabled], ['1,3,8,64', '', false]);

    // A file that is not a model: the old model's misfit goes with it.
    await page.selectOption('#pp-layout', 'NHWC');
    assert.ok(await page.locator('#pp-error').isVisible());
    await page.setInputFiles('#model-file', image);
    await page.waitForFunction(() => document.body.dataset.state === 'error');
    assert.ok(await page.locator('#pp-error').isHidden());
    // No message on the page names a CLI flag.
    for (const text of await page.locator('#status, #pp-error, #model-info').allTextContents()) assert.not.match(text, /--[a-z]/, text);
  } finally {
    await chromium.close();
    server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

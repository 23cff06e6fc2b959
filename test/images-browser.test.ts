/** The browser decoder (sdk/browser/images.ts) in real headless Chromium against the Node path.
 *  Skipped when /usr/bin/chromium is absent (apt-get install chromium). */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import type { Page } from 'playwright-core';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { presetSpec, type SizedSpec } from '../sdk/data/preprocess.js';
import { decodeImage, loadImageTensor } from '../sdk/node/images.js';
import { ASSETS, HAVE_ASSETS, ROOT } from './helpers.js';
import { CHROMIUM, HAVE_CHROMIUM, launchChromium } from './web-driver.js';

if (!HAVE_CHROMIUM) console.log(`\n  (skipping browser image tests: ${CHROMIUM} not found)`);
const maybe = HAVE_CHROMIUM ? test : test.skip;

let close: (() => Promise<void>) | undefined, page: Page;
test.before(async () => {
  if (!HAVE_CHROMIUM) return;
  const bundle = await build({ entryPoints: [join(ROOT, 'dist/sdk/browser/images.js')], bundle: true, format: 'iife', globalName: 'P2', write: false });
  ({ page, close } = await launchChromium());
  await page.addScriptTag({ content: bundle.outputFiles[0].text });
});
test.after(async () => { await close?.(); });

declare const P2: typeof import('../sdk/browser/images.js');

async function inBrowser(bytes: Uint8Array, spec?: SizedSpec): Promise<{ width: number; height: number; data: number[] }> {
  return page.evaluate(async ([b64, spec]) => {
    const bin = atob(b64);
    const u = Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
    if (spec) return { width: 0, height: 0, data: Array.from(await P2.loadImageTensor(u, spec)) };
    const im = await P2.decodeImage(u);
    return { width: im.width, height: im.height, data: Array.from(im.data) };
  }, [Buffer.from(bytes).toString('base64'), spec] as const);
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

maybe('decoding: EXIF orientation, alpha over white, grayscale, 16-bit, CMYK, WebP, PNG give the same pixels as Node', async () => {
  const base = { raw: { width: 6, height: 4, channels: 3 as const } };
  const px = Uint8Array.from({ length: 72 }, (_, i) => (i * 37) % 256);
  const rgba = Uint8Array.from({ length: 96 }, (_, i) => (i % 4 === 3 ? (i * 53) % 256 : (i * 29) % 256));
  const cases: [string, Buffer, number][] = [
    ['png', await sharp(px, base).png().toBuffer(), 0],
    ['orientation 6', await sharp(px, base).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer(), 0],
    ['alpha', await sharp(rgba, { raw: { width: 6, height: 4, channels: 4 } }).png().toBuffer(), 1],
    ['grayscale', await sharp(px, base).grayscale().png().toBuffer(), 0],
    ['16-bit', await sharp(px, base).toColourspace('rgb16').png().toBuffer(), 0],
    ['webp', await sharp(px, base).webp({ lossless: true }).toBuffer(), 0],
    ['cmyk', await sharp(px, base).toColourspace('cmyk').jpeg({ quality: 100 }).toBuffer(), 255],
  ];
  for (const [name, bytes, tolerance] of cases) {
    const [node, web] = [await decodeImage(bytes), await inBrowser(bytes)];
    assert.equal([web.width, web.height], [node.width, node.height], name);
    // CMYK goes through two different colour engines (lcms2 / skcms): only the layout is compared.
    if (name !== 'cmyk') assert.ok(maxDiff(node.data, web.data) <= tolerance, `${name}: ${maxDiff(node.data, web.data)}`);
  }
  // Alpha: compositing over white in both.
  const alpha = await inBrowser(cases[2][1]);
  assert.ok(alpha.data.some((v) => v > 200));
});

maybe('real photos: Node and browser tensors are identical, colour profiles included, with either Node resizer', async () => {
  if (!HAVE_ASSETS) return;
  const dir = join(ASSETS, 'images/imagenet-sample');
  const spec = presetSpec('imagenet');
  const levels = (i: number) => spec.std[Math.floor(i / (224 * 224))] * 255;
  let profiles = 0;
  // Sorted names; the first 40 include a dozen photos with sRGB, Adobe RGB and camera profiles.
  for (const f of readdirSync(dir).sort().slice(0, 40)) {
    const bytes = readFileSync(join(dir, f));
    if ((await sharp(bytes).metadata()).icc) profiles++;
    const web = (await inBrowser(bytes, spec)).data;
    const portable = await loadImageTensor(join(dir, f), spec, undefined, 0, 'portable');
    const viaSharp = await loadImageTensor(join(dir, f), spec);
    for (let i = 0; i < web.length; i++) {
      for (const [resizer, node] of [['portable', portable], ['sharp', viaSharp]] as const) {
        const d = Math.abs(web[i] - node[i]) * levels(i);
        if (d > 1e-3) assert.unreachable(`${f}: element ${i} differs by ${d} levels from Node's (${resizer} resizer)`);
      }
    }
  }
  assert.ok(profiles >= 10, `${profiles} photos with profiles`);
});

test.run();

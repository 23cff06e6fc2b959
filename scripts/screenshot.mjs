// npm run screenshot: docs/screenshot.png, the calibration page after calibrating MobileNetV2 (advanced-dw) on
// 8 ImageNet sample images (needs ../shared/assets), driven in headless Chromium like the test.
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ASSETS, HAVE_ASSETS, MODELS, ROOT } from '../dist/test/helpers.js';
import { HAVE_CHROMIUM, calibrateInPage, launchChromium, startServer } from '../dist/test/web-driver.js';

if (!HAVE_ASSETS || !HAVE_CHROMIUM) {
  console.error(`needs ${ASSETS} and /usr/bin/chromium`);
  process.exit(2);
}
const folder = join(ASSETS, 'images/imagenet-sample');
const images = readdirSync(folder).sort().slice(0, 8).map((f) => join(folder, f));
const server = await startServer();
const browser = await launchChromium({ width: 1280, height: 1400 });
try {
  const { page } = browser;
  await calibrateInPage(page, server.url, {
    model: join(MODELS, 'mobilenetv2-12-fp32.onnx'), images, preset: 'advanced-dw', preprocess: 'imagenet', inputShape: '1,3,224,224',
  });
  // A layer whose clip is worth seeing: the first depthwise convolution's output.
  const row = page.locator('#layers tbody tr').nth(3);
  await row.click();
  mkdirSync(join(ROOT, 'docs'), { recursive: true });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(ROOT, 'docs/screenshot.png') });
  console.log('wrote docs/screenshot.png');
} finally {
  await browser.close();
  server.stop();
}

/**
 * Drives the calibration page (web/, served by scripts/web.mjs) in the system's headless Chromium
 * through playwright-core — never a downloaded browser. Used by the browser test and by
 * scripts/screenshot.mjs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from './helpers.js';

export const CHROMIUM = '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run',
];

/** `npm run web` on a free port; resolves with the page's URL once it listens. */
export function startServer(): Promise<{ url: string; stop: () => void }> {
  const child: ChildProcess = spawn(process.execPath, ['scripts/web.mjs', '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /(http:\/\/\S+\/)/.exec(out);
      if (m) resolve({ url: m[1], stop: () => child.kill() });
    });
    child.on('exit', (code) => reject(new Error(`scripts/web.mjs exited (${code}) before listening: ${out}`)));
  });
}

/** Chromium with a fresh profile directory, removed on close. */
export async function launchChromium(viewport = { width: 1280, height: 900 }): Promise<{ context: BrowserContext; page: Page; close: () => Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'p2calib-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, acceptDownloads: true, viewport,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context, page,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export interface PageRun {
  model: string;
  /** Image files, or a folder (chosen with the page's folder picker). */
  images: string[] | string;
  /** Calibration preset, preprocessing preset and field overrides (by field id suffix, e.g. width). */
  preset: string;
  preprocess: string;
  fields?: Record<string, string>;
  inputShape?: string;
  /** Calibration workers (the page's default: up to 4, by the cores). */
  workers?: number;
  /** Called once the first progress event has reached the page, while calibration runs. */
  whileRunning?: (page: Page) => Promise<void>;
}

/** Fill the page's inputs, calibrate, and wait until it reports done (or throw its error). */
export async function calibrateInPage(page: Page, url: string, run: PageRun): Promise<{ progressEvents: number }> {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.setInputFiles('#model-file', run.model);
  await page.waitForFunction(() => /input /.test(document.getElementById('model-info')!.textContent ?? ''));
  await page.setInputFiles(typeof run.images === 'string' ? '#image-folder' : '#image-files', run.images);
  await page.selectOption('#preset', run.preset);
  await page.selectOption('#pp-preset', run.preprocess);
  for (const [k, v] of Object.entries(run.fields ?? {})) {
    if (await page.locator(`select#pp-${k}`).count()) await page.selectOption(`#pp-${k}`, v);
    else await page.fill(`#pp-${k}`, v);
  }
  if (run.inputShape !== undefined) await page.fill('#input-shape', run.inputShape);
  if (run.workers !== undefined) await page.fill('#workers', String(run.workers));
  await page.click('#calibrate');
  if (run.whileRunning) {
    await page.waitForFunction(() => Number(document.getElementById('progress')!.dataset.events) > 0);
    await run.whileRunning(page);
  }
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), undefined, { timeout: 120_000 });
  const state = await page.evaluate(() => ({ state: document.body.dataset.state, status: document.getElementById('status')!.textContent }));
  if (state.state !== 'done') throw new Error(`the page reports: ${state.status}`);
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  return { progressEvents: Number(await page.getAttribute('#progress', 'data-events')) };
}

/** Click a download link and return the file's bytes. */
export async function download(page: Page, selector: string): Promise<Buffer> {
  const [d] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  return readFileSync(await d.path());
}

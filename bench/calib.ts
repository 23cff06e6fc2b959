/**
 * Calibration throughput: MobileNetV2 (mobilenetv2-12-fp32), preset advanced, on the first N
 * images (default 200) of imagenet-sample (past its 500 images the list starts again: 1000 is
 * the 500 twice), with 1 and with 2 workers, each in a child process of its own so that its peak
 * RSS is its own. Prints wall seconds, images/s, peak RSS, where the time went, the compute floor
 * (the workers' measured forward times, float and fixed point, divided by the workers) and the
 * ratio to a budget measured in the same run: onnxruntime-web's (wasm, SIMD, 1 thread)
 * single-image latency of the float model plus that of the int8 model, times N. Targets: with 2
 * workers the calibration takes less than the budget; 1000 images in 30 s, within 1.3x the floor.
 *
 *   npm run bench:calib [-- --images 200] [-- --workers 1,2] [-- --repeat N] [-- --memory]
 *   npm run bench:calib -- --model agllnet --images 16 --workers 2    (time per image; no peer budget)
 *
 * --repeat N runs N rounds (the peer, then each worker count) and reports the fastest of each.
 *
 * --memory also calibrates 100 and 500 images with each worker count and prints the peak RSS
 * figures: images stream through, so the peak must not grow with their number.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ortWeb from 'onnxruntime-web';
import type { CalibrationTimings } from '../sdk/calibration.js';
import { loadModel } from '../sdk/model.js';
import { selectModels } from './models.js';
import { calibrateImages } from '../sdk/node/calibrate-images.js';
import { decodeImage, imageGeometry } from '../sdk/node/images.js';
import { normalize } from '../sdk/data/preprocess.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '200' },
    workers: { type: 'string', default: '1,2' },
    memory: { type: 'boolean', default: false },
    child: { type: 'boolean', default: false },
    runs: { type: 'string', default: '15' },
    repeat: { type: 'string', default: '1' },
    model: { type: 'string', default: 'mobilenetv2' },
  },
});
const ASSETS = join(process.cwd(), '../shared/assets');
const BENCH = selectModels(values.model)[0];
const MOBILENET = BENCH.name === 'mobilenetv2';
const MODEL = BENCH.file;
const INT8 = join(ASSETS, 'models/mobilenetv2-12-int8.onnx');
const MiB = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];

/** The first n images (sorted names), the list repeated past its end. */
function imageFiles(n: number): string[] {
  const all = readdirSync(BENCH.images).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort().map((f) => join(BENCH.images, f));
  return Array.from({ length: n }, (_, i) => all[i % all.length]);
}

interface ChildResult {
  images: number;
  workers: number;
  seconds: number;
  /** User + system CPU seconds of the whole process (all threads): cpu / wall = cores kept busy. */
  cpuSeconds: number;
  peakRss: number;
  /** The machine's 1-minute load average at the end (other jobs share the cores). */
  load: number;
  timings: CalibrationTimings;
}

/** In a child process: one calibration, reported as one JSON line. */
async function child(): Promise<void> {
  const files = imageFiles(Number(values.images));
  const workers = Number(values.workers);
  const t0 = performance.now();
  const model = await loadModel(readFileSync(MODEL), { inputShape: BENCH.shape });
  const cal = await calibrateImages(model, files, BENCH.spec, { preset: 'advanced', workers });
  const seconds = (performance.now() - t0) / 1000;
  const { user, system } = process.cpuUsage();
  const result: ChildResult = {
    images: files.length, workers, seconds, cpuSeconds: (user + system) / 1e6, peakRss: process.resourceUsage().maxRSS * 1024, load: loadavg()[0], timings: cal.timings!,
  };
  console.log(JSON.stringify(result));
}

function runChild(images: number, workers: number): ChildResult {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', '--images', String(images), '--workers', String(workers), '--model', BENCH.name], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`calibration child failed (status ${r.status})`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** onnxruntime-web single-image latency (median ms) of the float and int8 models. */
async function ortBudget(runs: number): Promise<{ float: number; int8: number }> {
  ortWeb.env.wasm.numThreads = 1;
  ortWeb.env.wasm.simd = true;
  const x = new Float32Array(3 * 224 * 224);
  for (let i = 0; i < x.length; i++) x[i] = 2 * Math.sin(i * 0.618) * Math.cos(i * 0.0013);
  const sessions = await Promise.all([MODEL, INT8].map((m) => ortWeb.InferenceSession.create(readFileSync(m), { executionProviders: ['wasm'] })));
  const times = sessions.map(() => [] as number[]);
  for (let i = 0; i < runs + 3; i++) {
    for (const [k, s] of sessions.entries()) {
      const t = performance.now();
      await s.run({ [s.inputNames[0]]: new ortWeb.Tensor('float32', x, [1, 3, 224, 224]) });
      if (i >= 3) times[k].push(performance.now() - t);
    }
  }
  await Promise.all(sessions.map((s) => s.release()));
  return { float: median(times[0]), int8: median(times[1]) };
}

/** Decoding and preprocessing alone, in this thread (ms per image): sharp decode, resize + crop, normalize. */
async function loading(files: string[]): Promise<{ decode: number; geometry: number; normalize: number }> {
  const spec = BENCH.spec;
  const ms = { decode: 0, geometry: 0, normalize: 0 };
  for (const f of files) {
    let t = performance.now();
    const img = await decodeImage(f);
    ms.decode += performance.now() - t;
    t = performance.now();
    const { image, plan } = await imageGeometry(img, spec);
    ms.geometry += performance.now() - t;
    t = performance.now();
    normalize(image, spec, undefined, 0, plan);
    ms.normalize += performance.now() - t;
  }
  return { decode: ms.decode / files.length, geometry: ms.geometry / files.length, normalize: ms.normalize / files.length };
}

function profile(r: ChildResult): string {
  const t = r.timings;
  const perImage = (ms: number) => `${(ms / r.images).toFixed(1)}`;
  const rows: [string, number][] = [
    ['float model (2 runs per image)', t.float], ['range statistics (pass 1)', t.ranges], ['float per-channel means', t.means],
    ['fixed-point model + its means', t.fixed], ['SQNR sums', t.sqnr], ['waiting for a decoded image', t.waitImage],
    ['waiting for the batch bias update', t.waitBias],
  ];
  const worked = rows.reduce((a, [, ms]) => a + ms, 0);
  return [
    `  per image, summed over ${t.workers} worker(s) (ms): ` + rows.map(([k, ms]) => `${k} ${perImage(ms)}`).join(', '),
    `  coordinator (ms total): start workers ${t.start.toFixed(0)}, spec + fixed engines ${t.spec.toFixed(0)}, merging + bias updates ${t.merge.toFixed(0)}; ` +
      `worker time accounted ${(worked / 1000).toFixed(1)} s of ${(t.workers * t.total / 1000).toFixed(1)} s worker-wall; ` +
      `image loads ${t.images} (pass 1 and later passes), taken decoded from the workers' caches ${t.reused}: ` +
      `${t.images - t.reused} decodings for ${new Set(imageFiles(r.images)).size} distinct files`,
  ].join('\n');
}

/** The compute floor: the workers' measured forward times (float and fixed-point engines) spread
 *  over the workers, in seconds. */
const floor = (r: ChildResult) => (r.timings.float + r.timings.fixed) / r.timings.workers / 1000;

async function main(): Promise<void> {
  const n = Number(values.images);
  const workerCounts = values.workers.split(',').map(Number);
  const files = imageFiles(n);
  console.log(`Calibration throughput: ${BENCH.name}, preset advanced, ${files.length} images of ${BENCH.images.split('/images/')[1]}; ` +
    `load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the start`);
  const load = await loading(files.slice(0, 50));
  console.log(`decoding + preprocessing alone, 1 thread (ms per image): sharp decode ${load.decode.toFixed(1)}, ` +
    `resize + crop ${load.geometry.toFixed(1)}, normalize ${load.normalize.toFixed(1)}`);
  // Rounds of (peer, then each worker count): with other jobs on the machine, the fastest run of
  // each (and the peer's fastest median) is the least disturbed one; every run is printed. The
  // peer budget is MobileNetV2's (float and int8 models).
  const budgets: { float: number; int8: number }[] = [];
  const runs = new Map<number, ChildResult[]>(workerCounts.map((w) => [w, []]));
  for (let round = 0; round < Number(values.repeat); round++) {
    for (const w of workerCounts) {
      if (MOBILENET) budgets.push(await ortBudget(Number(values.runs)));
      runs.get(w)!.push(runChild(n, w));
    }
  }
  let budget = 0, ortFloat = 0, ortInt8 = 0;
  if (MOBILENET) {
    budgets.push(await ortBudget(Number(values.runs)));
    ortFloat = Math.min(...budgets.map((b) => b.float));
    ortInt8 = Math.min(...budgets.map((b) => b.int8));
    budget = ((ortFloat + ortInt8) * files.length) / 1000;
    console.log(`onnxruntime-web (wasm, 1 thread) single image, median of ${values.runs} (fastest of ${budgets.length} rounds; all: ` +
      `${budgets.map((b) => `${b.float.toFixed(0)}+${b.int8.toFixed(0)}`).join(', ')} ms): float ${ortFloat.toFixed(1)} ms, int8 ${ortInt8.toFixed(1)} ms ` +
      `-> budget (float + int8) x ${files.length} = ${budget.toFixed(1)} s`);
  }
  const best: ChildResult[] = [];
  for (const [w, list] of runs) {
    const r = list.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    best.push(r);
    console.log(`workers ${w}: ${r.seconds.toFixed(1)} s wall (calibration ${(r.timings.total / 1000).toFixed(1)} s; all runs ${list.map((x) => x.seconds.toFixed(1)).join(', ')} s), ` +
      `${(r.images / r.seconds).toFixed(2)} images/s = ${((1000 * r.seconds) / r.images).toFixed(1)} ms per image, peak RSS ${MiB(r.peakRss)}` +
      (MOBILENET ? `, ratio to budget ${(r.seconds / budget).toFixed(2)}${w === 2 ? ' (target < 1)' : ''}` : ''));
    console.log(`  compute floor ${floor(r).toFixed(1)} s (forward times / workers; all runs ${list.map((x) => floor(x).toFixed(1)).join(', ')} s): ` +
      `wall / floor ${(r.seconds / floor(r)).toFixed(2)}${w === 2 ? ' (target <= 1.3)' : ''}`);
    console.log(`  CPU ${r.cpuSeconds.toFixed(1)} s (${(r.cpuSeconds / r.seconds).toFixed(2)} cores busy on average; ` +
      `${((1000 * r.cpuSeconds) / r.images).toFixed(1)} ms per image${MOBILENET ? ` against the budget's ${(ortFloat + ortInt8).toFixed(1)}` : ''}), load average ${r.load.toFixed(1)} at the end`);
    console.log(profile(r));
  }
  if (best.length > 1) {
    console.log(`scaling ${best[0].workers} -> ${best[1].workers} workers: ${(best[0].seconds / best[1].seconds).toFixed(2)}x`);
  }
  if (values.memory) {
    for (const w of workerCounts) {
      const rss = [100, 500].map((count) => runChild(count, w).peakRss);
      console.log(`memory, ${w} worker(s): peak RSS ${MiB(rss[0])} for 100 images, ${MiB(rss[1])} for 500`);
    }
  }
}

await (values.child ? child() : main());

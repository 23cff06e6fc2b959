/**
 * Fixed-point inference speed: MobileNetV2 (mobilenetv2-12-fp32, 1x3x224x224, 8-bit), p2calib's
 * fixed-point engine against p2calib's float engine, single-threaded, in this process and
 * interleaved so that load from other processes hits both alike. The quantization spec is a real
 * calibration (preset "simple" on a few ImageNet sample images). Prints the median ms of each and
 * the ratio fixed / float (target <= 0.6), plus a per-op breakdown with --profile.
 * Usage: npm run bench:fixed [-- --runs 40] [-- --profile]
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { calibrate, loadModel, loadImageTensor, presetSpec } from '../sdk/index.js';
import { readModelFile } from '../sdk/node/files.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '30' }, profile: { type: 'boolean', default: false } } });
const RUNS = Number(values.runs);
const ASSETS = join(process.cwd(), '../shared/assets');
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];

async function main(): Promise<void> {
  const { bytes } = readModelFile(join(ASSETS, 'models/mobilenetv2-12-fp32.onnx'));
  const model = await loadModel(bytes, { inputShape: [1, 3, 224, 224] });
  const dir = join(ASSETS, 'images/imagenet-sample');
  const spec = presetSpec('imagenet');
  const images = await Promise.all(readdirSync(dir).sort().slice(0, 8).map((f) => loadImageTensor(join(dir, f), spec)));
  const cal = await calibrate(model, images, { preset: 'simple' });
  const fixed = await cal.fixedPlan(1);
  const { plan: float } = await model.floatPlan(1);
  const name = model.inputs[0].name;
  const feeds = { [name]: images[0] };

  const runners = [
    { name: 'fixed point (8-bit)', run: () => fixed.run(feeds) },
    { name: 'float', run: () => float.run(feeds) },
  ];
  const times = runners.map(() => [] as number[]);
  for (let i = 0; i < RUNS + 3; i++) {
    for (const [k, r] of runners.entries()) {
      const t = performance.now();
      r.run();
      if (i >= 3) times[k].push(performance.now() - t);
    }
  }
  const [tq, tf] = times.map(median);
  console.log(`MobileNetV2 1x3x224x224, single-threaded, ${RUNS} interleaved runs (median):`);
  for (const [k, r] of runners.entries()) console.log(`  ${r.name.padEnd(20)} ${median(times[k]).toFixed(2).padStart(7)} ms`);
  console.log(`ratio fixed / float: ${(tq / tf).toFixed(3)} (target <= 0.6)`);
  console.log(`fixed-point arena ${(fixed.arenaBytes / 2 ** 20).toFixed(2)} MiB, float fallbacks: ${fixed.fallbacks.length ? fixed.fallbacks.join(', ') : 'none'}`);

  if (values.profile) {
    const per = new Map<string, number>();
    for (let i = 0; i < RUNS; i++) {
      let last = performance.now();
      fixed.run(feeds, (layer) => {
        const now = performance.now();
        const n = layer.nodes[0];
        const p = model.inferred.compiled.get(n)?.params as { group?: number; kh?: number; kw?: number; sh?: number } | undefined;
        const key = n.op === 'Conv' ? `Conv ${p!.kh}x${p!.kw}/${p!.sh}${p!.group! > 1 ? ' depthwise' : ''}` : n.op;
        per.set(key, (per.get(key) ?? 0) + now - last);
        last = now;
      });
    }
    console.log('fixed point per op (mean ms per run):');
    for (const [k, v] of [...per].sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(22)} ${(v / RUNS).toFixed(3).padStart(7)}`);
  }
}

await main();

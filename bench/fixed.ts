/**
 * Fixed-point inference speed on every shared model, 8-bit (or 16-bit: --bits 16), single-threaded: p2calib's
 * fixed-point engine (FixedPlan.run: float input quantized, every layer in integers, output
 * dequantized) against p2calib's float engine (FloatPlan.run), in this process and interleaved so
 * that load from other processes hits both alike. The quantization spec is a real calibration
 * (preset "simple" on the model's first 4 images; the preset does not change the work per layer);
 * the timed input is the first of them. Prints per model the median ms of each, the ratio
 * fixed / float (target <= 0.5 on every model whose layers are all integer) and the ops that run
 * as float fallbacks, then the geometric mean over the all-integer models.
 *
 *   npm run bench:fixed [-- --runs 20] [-- --budget 6] [-- --models mobilenetv2,yolox-nano] [-- --profile] [-- --bits 16]
 *
 * --profile adds the fixed-point time per op type (mean per run).
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { calibrate, loadModel } from '../sdk/index.js';
import type { FixedPlan } from '../sdk/engine/fixed.js';
import { readModelFile } from '../sdk/node/files.js';
import { formatProfile, geomean, interleave, loadInputs, median, opKey, selectModels, stepTimer } from './models.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    budget: { type: 'string', default: '6' },
    models: { type: 'string' },
    profile: { type: 'boolean', default: false },
    bits: { type: 'string', default: '8' },
  },
});
const RUNS = Number(values.runs);
const BITS = values.bits === '16' ? 16 : 8;
const ms = (t: number) => `${t.toFixed(t < 100 ? 2 : 0)} ms`;

async function main(): Promise<void> {
  console.log(`Fixed point (${BITS}-bit) against float, single-threaded, batch 1; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the start`);
  const ratios: number[] = [];
  for (const bm of selectModels(values.models)) {
    const { bytes } = readModelFile(bm.file);
    const model = await loadModel(bytes, { inputShape: bm.shape });
    const images = await loadInputs(bm, 4);
    let fixed: FixedPlan;
    try {
      fixed = await (await calibrate(model, images, { preset: 'simple', bits: BITS })).fixedPlan(1);
    } catch (e) {
      console.log(`${bm.name.padEnd(12)} cannot run in fixed point: ${(e as Error).message}`);
      continue;
    }
    const { plan: float } = await model.floatPlan(1);
    const feeds = { [model.inputs[0].name]: images[0] };
    const mobilenet = bm.name === 'mobilenetv2';
    const times = await interleave([() => fixed.run(feeds), () => float.run(feeds)], {
      runs: RUNS, minRuns: Math.min(3, RUNS), warmup: mobilenet ? 3 : 1, budgetMs: Number(values.budget) * 1000,
    });
    const [tq, tf] = times.map(median);
    const integer = fixed.fallbacks.length === 0;
    if (integer) ratios.push(tq / tf);
    console.log(`${bm.name.padEnd(12)} ${times[0].length} runs: fixed ${ms(tq)}, float ${ms(tf)}, ratio fixed / float ${(tq / tf).toFixed(3)}; ` +
      `arena ${(fixed.arenaBytes / 2 ** 20).toFixed(2)} MiB; float fallbacks: ${integer ? 'none' : [...new Set(fixed.fallbacks.map((n) => model.graph.nodes.find((x) => x.name === n)?.op ?? n))].join(', ')}; ` +
      `load ${loadavg()[0].toFixed(2)}`);
    if (values.profile) {
      const per = new Map<string, number>();
      const key = (n: Parameters<typeof opKey>[0]) => opKey(n, model.inferred.compiled.get(n)?.params);
      const runs = Math.max(1, Math.min(times[0].length, Math.ceil(2000 / tq)));
      for (let i = 0; i < runs; i++) {
        const timer = stepTimer(per, key);
        fixed.run(feeds, (layer) => timer(layer.nodes[0]));
      }
      console.log(`  fixed point per op type (mean of ${runs} runs): ${formatProfile(per, runs)}`);
    }
  }
  if (ratios.length > 1) console.log(`geometric mean of fixed / float over the ${ratios.length} all-integer models: ${geomean(ratios).toFixed(3)} (target <= 0.5 each)`);
}

await main();

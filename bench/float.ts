/**
 * Float inference speed on every shared model, single-threaded: p2calib's WASM engine against
 * onnxruntime-web (wasm backend, SIMD, 1 thread) and onnxruntime-node (1 intra-op thread), all in
 * this process and interleaved so that load from other processes hits them alike. Each model's
 * input is a real image preprocessed as the model expects. Prints per model the median ms of each
 * and the ratio p2calib / onnxruntime-web (target <= 1 on every model), then the geometric mean of
 * the ratios (target <= 0.5); MobileNetV2 also gets batch-8 throughput and memory.
 *
 *   npm run bench:float [-- --runs 20] [-- --budget 8] [-- --models mobilenetv2,agllnet] [-- --profile]
 *
 * Each model runs until every engine has --runs times or the rounds took --budget seconds (at
 * least 3 rounds after 1 warm-up; MobileNetV2 3 warm-ups, as before). --profile adds p2calib's
 * time per op type (mean per run, from FloatPlan.run's onStep).
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { loadModel } from '../sdk/index.js';
import { formatProfile, geomean, interleave, loadInputs, median, opKey, selectModels, stepTimer } from './models.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    budget: { type: 'string', default: '8' },
    models: { type: 'string' },
    profile: { type: 'boolean', default: false },
  },
});
const RUNS = Number(values.runs);
const MiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const ms = (t: number) => `${t.toFixed(t < 100 ? 2 : 0)} ms`;

async function main(): Promise<void> {
  ortWeb.env.wasm.numThreads = 1;
  ortWeb.env.wasm.simd = true;
  console.log(`Float, single-threaded, batch 1; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the start`);
  const ratios: number[] = [];
  for (const bm of selectModels(values.models)) {
    const bytes = readFileSync(bm.file);
    const [x] = await loadInputs(bm, 1);
    const rss0 = process.memoryUsage().rss;
    const model = await loadModel(bytes, { inputShape: bm.shape });
    const ours = await model.floatPlan(1);
    const rssOurs = process.memoryUsage().rss - rss0;
    const inputName = model.inputs[0].name;
    const web = await ortWeb.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
    const node = await ortNode.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', logSeverityLevel: 3 });
    const runners = [
      () => ours.plan.run({ [inputName]: x }),
      () => web.run({ [web.inputNames[0]]: new ortWeb.Tensor('float32', x, bm.shape) }),
      () => node.run({ [node.inputNames[0]]: new ortNode.Tensor('float32', x, bm.shape) }),
    ];
    const mobilenet = bm.name === 'mobilenetv2';
    const times = await interleave(runners, { runs: RUNS, minRuns: Math.min(3, RUNS), warmup: mobilenet ? 3 : 1, budgetMs: Number(values.budget) * 1000 });
    const [tOurs, tWeb, tNode] = times.map(median);
    ratios.push(tOurs / tWeb);
    console.log(`${bm.name.padEnd(12)} [${bm.shape}] ${times[0].length} runs: p2calib ${ms(tOurs)}, onnxruntime-web ${ms(tWeb)}, ` +
      `onnxruntime-node ${ms(tNode)}; ratio p2calib / onnxruntime-web ${(tOurs / tWeb).toFixed(3)}, / onnxruntime-node ${(tOurs / tNode).toFixed(2)}; ` +
      `load ${loadavg()[0].toFixed(2)}`);
    if (mobilenet) {
      const ours8 = await model.floatPlan(8);
      const x8 = new Float32Array(8 * x.length);
      for (let b = 0; b < 8; b++) x8.set(x, b * x.length);
      const shape8 = [8, ...bm.shape.slice(1)];
      const t8 = (await interleave([
        () => ours8.plan.run({ [inputName]: x8 }),
        () => web.run({ [web.inputNames[0]]: new ortWeb.Tensor('float32', x8, shape8) }),
        () => node.run({ [node.inputNames[0]]: new ortNode.Tensor('float32', x8, shape8) }),
      ], { runs: Math.max(5, Math.round(RUNS / 4)), minRuns: 5, warmup: 1, budgetMs: Infinity })).map(median);
      console.log(`  batch 8 throughput (images/s): p2calib ${(8000 / t8[0]).toFixed(1)}, onnxruntime-web ${(8000 / t8[1]).toFixed(1)}, ` +
        `onnxruntime-node ${(8000 / t8[2]).toFixed(1)}`);
      console.log(`  memory (p2calib): arena ${MiB(ours.plan.arenaBytes)} at batch 1, ${MiB(ours8.plan.arenaBytes)} at batch 8; ` +
        `WASM memory ${MiB(ours.rt.memory.buffer.byteLength)} and ${MiB(ours8.rt.memory.buffer.byteLength)}; RSS growth for the batch-1 plan ${MiB(rssOurs)}`);
    }
    if (values.profile) {
      const per = new Map<string, number>();
      const key = (n: Parameters<typeof opKey>[0]) => opKey(n, model.inferred.compiled.get(n)?.params);
      const runs = Math.max(1, Math.min(times[0].length, Math.ceil(2000 / tOurs)));
      for (let i = 0; i < runs; i++) ours.plan.run({ [inputName]: x }, stepTimer(per, key));
      console.log(`  p2calib per op type (mean of ${runs} runs): ${formatProfile(per, runs)}`);
    }
    await web.release();
    await node.release();
  }
  if (ratios.length > 1) console.log(`geometric mean of p2calib / onnxruntime-web over ${ratios.length} models: ${geomean(ratios).toFixed(3)} (target <= 0.5)`);
  console.log(`process peak RSS ${MiB(process.resourceUsage().maxRSS * 1024)}`);
}

await main();

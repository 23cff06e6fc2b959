/**
 * Float inference speed: MobileNetV2 (mobilenetv2-12-fp32, 1x3x224x224), single-threaded, p2calib
 * against onnxruntime-web (wasm backend, SIMD, 1 thread) and onnxruntime-node (1 intra-op thread),
 * all in this process and interleaved so that load from other processes hits all three alike.
 * Prints the median ms of each, the ratio p2calib / onnxruntime-web (target <= 0.8), batch-8
 * throughput, and memory. Usage: npm run bench:float [-- --runs 40] [-- --profile]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { loadModel } from '../sdk/index.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '30' }, profile: { type: 'boolean', default: false } } });
const RUNS = Number(values.runs);
const MODEL = join(process.cwd(), '../shared/assets/models/mobilenetv2-12-fp32.onnx');
const MiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];

/** A deterministic input in the range of normalized images. */
function input(batch: number): Float32Array {
  const x = new Float32Array(batch * 3 * 224 * 224);
  for (let i = 0; i < x.length; i++) x[i] = 2 * Math.sin(i * 0.618) * Math.cos(i * 0.0013);
  return x;
}

interface Runner { name: string; run(x: Float32Array, batch: number): Promise<unknown> }

async function main(): Promise<void> {
  const bytes = readFileSync(MODEL);
  const rss0 = process.memoryUsage().rss;
  const model = await loadModel(bytes, { inputShape: [1, 3, 224, 224] });
  const ours1 = await model.floatPlan(1);
  const ours8 = await model.floatPlan(8);
  const rssOurs = process.memoryUsage().rss - rss0;
  const inputName = model.inputs[0].name;

  ortWeb.env.wasm.numThreads = 1;
  ortWeb.env.wasm.simd = true;
  const web = await ortWeb.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
  const node = await ortNode.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' });

  const runners: Runner[] = [
    { name: 'p2calib', run: async (x, b) => (b === 1 ? ours1 : ours8).plan.run({ [inputName]: x }) },
    { name: 'onnxruntime-web', run: (x, b) => web.run({ [web.inputNames[0]]: new ortWeb.Tensor('float32', x, [b, 3, 224, 224]) }) },
    { name: 'onnxruntime-node', run: (x, b) => node.run({ [node.inputNames[0]]: new ortNode.Tensor('float32', x, [b, 3, 224, 224]) }) },
  ];

  async function measure(batch: number, runs: number): Promise<number[]> {
    const x = input(batch);
    const times = runners.map(() => [] as number[]);
    for (let i = 0; i < runs + 3; i++) {
      for (const [k, r] of runners.entries()) {
        const t = performance.now();
        await r.run(x, batch);
        if (i >= 3) times[k].push(performance.now() - t);
      }
    }
    return times.map(median);
  }

  const t1 = await measure(1, RUNS);
  const t8 = await measure(8, Math.max(5, Math.round(RUNS / 4)));
  console.log(`MobileNetV2 1x3x224x224, single-threaded, ${RUNS} interleaved runs (median):`);
  for (const [k, r] of runners.entries()) console.log(`  ${r.name.padEnd(17)} ${t1[k].toFixed(2).padStart(7)} ms`);
  console.log(`ratio p2calib / onnxruntime-web: ${(t1[0] / t1[1]).toFixed(3)} (target <= 0.8)`);
  console.log(`ratio p2calib / onnxruntime-node: ${(t1[0] / t1[2]).toFixed(3)}`);
  console.log('batch 8 throughput:');
  for (const [k, r] of runners.entries()) console.log(`  ${r.name.padEnd(17)} ${(8000 / t8[k]).toFixed(1).padStart(7)} images/s`);
  console.log(`memory (p2calib): arena ${MiB(ours1.plan.arenaBytes)} at batch 1, ${MiB(ours8.plan.arenaBytes)} at batch 8; ` +
    `WASM memory ${MiB(ours1.rt.memory.buffer.byteLength)} and ${MiB(ours8.rt.memory.buffer.byteLength)}; ` +
    `RSS growth for both plans ${MiB(rssOurs)}; process peak RSS ${MiB(process.resourceUsage().maxRSS * 1024)}`);

  if (values.profile) {
    const per = new Map<string, number>();
    const x = input(1);
    for (let i = 0; i < RUNS; i++) {
      let last = performance.now();
      ours1.plan.run({ [inputName]: x }, (n) => {
        const now = performance.now();
        per.set(n.op, (per.get(n.op) ?? 0) + (now - last) / RUNS);
        last = now;
      });
    }
    console.log('p2calib per op type (mean ms per run):');
    for (const [op, ms] of [...per].sort((a, b) => b[1] - a[1])) console.log(`  ${op.padEnd(20)} ${ms.toFixed(3)}`);
  }
  await web.release();
  await node.release();
}

await main();

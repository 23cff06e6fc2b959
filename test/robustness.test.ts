/**
 * Every model calibrates (issue 14): seeded random CNNs full of the statistics that break
 * calibrators (test/random-cnn.ts) calibrate at every preset in 8 and 16 bits; the spec they get
 * is one the fixed-point engine accepts; the engine's float fallbacks are the ones calibration
 * predicts (and inspect lists); the QDQ export runs in onnxruntime-node; at 16 bits the fixed
 * output stays within a stated SQNR of float; and every output below its verdict threshold has a
 * verdict whose chain of inherited errors ends at a cause.
 */
import ort from 'onnxruntime-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Verdict } from '../sdk/quant/diagnose.js';
import { calibrate, loadModel, type Calibration } from '../sdk/index.js';
import type { Preset } from '../sdk/quant/calibrate.js';
import { randomCnn } from './random-cnn.js';

/** Graphs in the suite: seeds 1..GRAPHS. */
const GRAPHS = 200;
/**
 * The floor on the 16-bit output SQNR (dB, fixed against float over the calibration images).
 * What keeps it far below 16 bits' ~90 dB is the seed's statistics, by design: a running average
 * of 3 images' maxima clips the peaks of the widest; a Softmax reads its input's absolute step.
 * Two cases are not scored: outputs whose float values stay below 2^-16 (PACT2's smallest clip),
 * and `advanced` where the preset's weight-clipping rule cut a channel, which a verdict must name.
 */
const SQNR_16 = 20;
const PRESETS: Preset[] = ['simple', 'advanced', 'advanced-dw'];
const ORT_OPTIONS = { logSeverityLevel: 3, graphOptimizationLevel: 'disabled', intraOpNumThreads: 1, interOpNumThreads: 1, enableCpuMemArena: false } as const;

/** A tensor's verdict followed up its chain of inherited errors to one that is not inherited;
 *  undefined when the tensor has none or the chain ends at an input without a verdict. */
function rootCause(verdicts: Verdict[], tensor: string): Verdict | undefined {
  const byTensor = new Map(verdicts.map((v) => [v.tensor, v]));
  let v = byTensor.get(tensor);
  for (let hops = 0; v?.cause.kind === 'inherited' && hops < verdicts.length; hops++) v = byTensor.get(v.cause.tensor);
  return v;
}

test(`${GRAPHS} random CNNs calibrate at every preset in 8 and 16 bits, run in fixed point and as QDQ in onnxruntime`, async () => {
  const failures: string[] = [];
  const seen = new Set<string>();
  const sqnr16: number[] = [];
  let compromised = 0, weightClipped = 0, calibrations = 0;
  for (let seed = 1; seed <= GRAPHS; seed++) {
    const g = randomCnn(seed);
    g.ops.forEach((op) => seen.add(op));
    const model = await loadModel(g.bytes);
    const floats = [];
    for (const x of g.samples) floats.push(await model.run(x));
    for (const bits of [8, 16] as const) {
      for (const preset of PRESETS) {
        const what = `seed ${seed} (${g.ops.join(' ')}), ${preset} ${bits}-bit`;
        // At 16 bits the output is held to the float model's function: a Clip keeps its bounds (by
        // the seed's rule the device saturates at the power-of-2 clip instead, another function).
        const cal: Calibration | void = await calibrate(model, g.samples, { preset, bits, batchSize: 2, keepClipBounds: bits === 16 }).catch((e: Error) => {
          failures.push(`${what}: ${e.message}`);
        });
        if (!cal) continue;
        calibrations++;
        const t = cal.table;
        const plan = await cal.fixedPlan(1);
        if (plan.fallbacks.join() !== t.fallbacks!.map((f) => f.node).join()) failures.push(`${what}: fallbacks ${plan.fallbacks} vs ${t.fallbacks!.map((f) => f.node)}`);
        if (Object.keys(t.compromises!).length) compromised++;
        // Output SQNR over the calibration images.
        const sums = new Map<string, [number, number, number]>();
        for (const [k, x] of g.samples.entries()) {
          for (const [name, y] of Object.entries(await cal.run(x))) {
            if (!y.every(Number.isFinite)) failures.push(`${what}: ${name} not finite`);
            const s = sums.get(name) ?? [0, 0, 0];
            floats[k][name].forEach((v, i) => { s[0] += v * v; s[1] += (y[i] - v) ** 2; s[2] = Math.max(s[2], Math.abs(v)); });
            sums.set(name, s);
          }
        }
        const clipped = t.diagnostics!.verdicts.some((v) => v.cause.kind === 'weight-clip');
        if (clipped) weightClipped++;
        for (const [name, [signal, noise, peak]] of sums) {
          const db = noise === 0 ? Infinity : 10 * Math.log10(signal / noise);
          if (bits !== 16 || peak < 2 ** -16) continue;
          if (!(preset === 'advanced' && clipped)) {
            sqnr16.push(db);
            if (!(db >= SQNR_16)) failures.push(`${what}: ${name} at ${db.toFixed(1)} dB`);
          }
          // No silent collapse: an output below its threshold has a verdict that ends at a cause.
          if (db < t.diagnostics!.thresholds[16] - 1 && !rootCause(t.diagnostics!.verdicts, name)) failures.push(`${what}: ${name} at ${db.toFixed(1)} dB without a verdict`);
        }
        const session = await ort.InferenceSession.create(cal.toQdqOnnx(), ORT_OPTIONS);
        const res = await session.run({ x: new ort.Tensor('float32', g.samples[0], g.shape) });
        for (const name of session.outputNames) if (!(res[name].data as Float32Array).every(Number.isFinite)) failures.push(`${what}: QDQ ${name} not finite`);
        await session.release();
      }
    }
  }
  sqnr16.sort((a, b) => a - b);
  console.log(`  ${calibrations} calibrations; with compromises: ${compromised}; advanced's weight clip named by a verdict: ${weightClipped}; ` +
    `16-bit output SQNR: lowest ${sqnr16[0].toFixed(1)} dB, median ${sqnr16[sqnr16.length >> 1].toFixed(1)} dB; ops: ${[...seen].sort().join(' ')}`);
  assert.equal(failures, []);
  assert.is(calibrations, GRAPHS * 6);
  for (const op of ['Conv', 'ConvTranspose', 'Add', 'Sub', 'Mul', 'Concat', 'MatMul', 'Softmax', 'Sigmoid', 'MaxPool', 'AveragePool', 'Gemm', 'Resize']) assert.ok(seen.has(op), op);
  assert.ok(compromised > 0);
});

test.run();

/**
 * Activation histograms of the float model over calibration samples: what a user looks at to judge
 * a PACT2 clip. The calibration's WASM statistics kernels (quant/histogram.ts) read each tensor in
 * the float engine's arena as soon as it is written, in two passes over the samples: each tensor's
 * range over all of them, then the counts over that range.
 */
import { fail } from './errors.js';
import { check, checkCallbacks, checkIterable, checkModel, options as optionsOf } from './guard.js';
import type { Model } from './model.js';
import { splitImages, type CalibrationProgress, type Sample, type Samples } from './quant/calibrate.js';
import { StatsKernels } from './quant/histogram.js';
import { runVisiting } from './quant/observe.js';

export interface TensorHistogram {
  /** The tensor's range over every sample. */
  min: number;
  max: number;
  /** counts[i]: values whose bin round((v - min) * (bins - 1) / (max - min)) is i (the calibration's
   *  rule), i.e. bin i is centred on min + i * (max - min) / (bins - 1). */
  counts: Uint32Array;
}

export interface HistogramOptions {
  /** Bins per tensor (default 256, at most 2048). */
  bins?: number;
  /** After each sample: pass 0 finds ranges, pass 1 counts. */
  onProgress?: (p: CalibrationProgress) => void;
}

export async function activationHistograms(
  model: Model, samples: Samples, tensors: readonly string[], given?: HistogramOptions,
): Promise<Record<string, TensorHistogram>> {
  checkModel(model, 'activationHistograms');
  checkIterable(samples, 'activationHistograms', 'samples');
  check(Array.isArray(tensors) && tensors.every((t) => typeof t === 'string'), 'activationHistograms', 'tensors must be a list of tensor names');
  const options = optionsOf(given, 'activationHistograms');
  checkCallbacks(options, ['onProgress'], 'activationHistograms');
  const bins = options.bins ?? 256;
  if (!Number.isInteger(bins) || bins < 2 || bins > 2048) fail('BAD_OPTION', `bins must be an integer in 2..2048, got ${bins}`);
  const { plan, rt } = await model.floatPlan(1, { observe: tensors });
  const stats = new StatsKernels(rt);
  const result: Record<string, TensorHistogram> = {};
  for (const t of tensors) result[t] = { min: Infinity, max: -Infinity, counts: new Uint32Array(bins) };
  const total = Array.isArray(samples) ? samples.length : undefined;
  for (let pass = 0; pass < 2; pass++) {
    let done = 0;
    for await (const sample of samples as AsyncIterable<Sample>) {
      for (const feeds of splitImages(model, sample)) {
        const seen = new Set<string>();
        runVisiting(plan, feeds, (name) => {
          const h = result[name];
          const loc = h && !seen.has(name) ? plan.location(name) : undefined;
          if (!loc) return;
          seen.add(name);
          if (pass === 0) {
            const [lo, hi] = stats.minMax(loc.ptr, loc.length);
            h.min = Math.min(h.min, lo);
            h.max = Math.max(h.max, hi);
          } else {
            const counts = stats.histogram(loc.ptr, loc.length, h.min, h.max, bins);
            for (let i = 0; i < bins; i++) h.counts[i] += counts[i];
          }
        });
        const missing = tensors.find((t) => !seen.has(t));
        if (missing !== undefined) fail('BAD_OPTION', `"${missing}" is not a tensor the float model computes at run time`);
      }
      done++;
      options.onProgress?.({ pass, passes: 2, done, total });
    }
    if (!done) fail('BAD_INPUT', pass === 0 ? 'no samples were given' : 'the samples could be iterated only once; histograms need two passes');
  }
  return result;
}

/** Calibration from image files in Node: images are decoded and preprocessed as they stream
 *  through (inside the worker threads when there are several), a few at a time, so that memory
 *  does not grow with their number. */
import { availableParallelism } from 'node:os';
import { runCalibration, type Calibration } from '../calibration.js';
import { pixelAffine, pixelSpec, type SizedSpec } from '../data/preprocess.js';
import { fail } from '../errors.js';
import type { Model } from '../model.js';
import type { CalibrateOptions } from '../quant/calibrate.js';
import { CalibrationWorker, LocalWorker } from '../quant/worker.js';
import { skipImage, type SkipPolicy } from './datasets.js';
import { imageLoader } from './images.js';
import { startNodeWorkers } from './pool.js';

export interface ImageCalibrateOptions extends CalibrateOptions, SkipPolicy {
  /** Feed raw 0..255 pixels: the spec's affine map moves into the model (DESIGN.md §4). */
  pixelInput?: boolean;
  /** Worker threads, each with its own engines and decoder (default: the number of cores; 1 runs in
   *  this thread). The result does not depend on it. */
  workers?: number;
}

export async function calibrateImages(model: Model, files: readonly string[], spec: SizedSpec, options: ImageCalibrateOptions = {}): Promise<Calibration> {
  const requested = options.workers ?? availableParallelism();
  if (!Number.isInteger(requested) || requested < 1) fail('BAD_OPTION', `workers must be a positive integer, got ${options.workers}`);
  const workers = Math.max(1, Math.min(requested, files.length));
  const m = options.pixelInput ? model.withPixelInput(pixelAffine(spec)) : model;
  const load = options.pixelInput ? pixelSpec(spec) : spec;
  return runCalibration(m, {
    items: () => files,
    count: files.length,
    // Undecodable, empty or oversized images are skipped (reported) unless strict.
    onItemError: (error) => skipImage(options, error),
    start: async (setup, calibrated) => workers === 1
      ? [new LocalWorker(await CalibrationWorker.create(calibrated, setup), imageLoader(load))]
      : startNodeWorkers(workers, { model: calibrated.parts(), setup, loader: load }),
  }, options);
}

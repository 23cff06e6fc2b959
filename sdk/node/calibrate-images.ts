/** Calibration from image files in Node: images are decoded and preprocessed as they stream
 *  through (inside the worker threads when there are several), a few at a time, so that memory
 *  does not grow with their number. */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { relative } from 'node:path';
import { runCalibration, type Calibration } from '../calibration.js';
import { pixelAffine, pixelSpec, type SizedSpec } from '../data/preprocess.js';
import { fail } from '../errors.js';
import { check, checkModel, isRecord, options as optionsOf } from '../guard.js';
import type { Model } from '../model.js';
import type { CalibrationSource, ImageIdentity } from '../export/provenance.js';
import type { CalibrateOptions } from '../quant/calibrate.js';
import { CalibrationWorker, LocalWorker } from '../quant/worker.js';
import { skipImage, type SkipPolicy } from './datasets.js';
import { readFileOrFail } from './files.js';
import { imageLoader } from './images.js';
import { startNodeWorkers } from './pool.js';

export interface ImageCalibrateOptions extends CalibrateOptions, SkipPolicy {
  /** Feed raw 0..255 pixels: the spec's affine map moves into the model (DESIGN.md §4). */
  pixelInput?: boolean;
  /** Worker threads, each with its own engines and decoder (default: the number of cores; 1 runs in
   *  this thread). The result does not depend on it. */
  workers?: number;
  /** The folder (or list file's folder) image names are recorded relative to (default: the cwd). */
  imageRoot?: string;
  /** The model file's name and options applied by the caller, for calibration.json's provenance. */
  source?: Pick<CalibrationSource, 'modelFile' | 'modelPath' | 'options'>;
}

/** Each file's name under `root` and the SHA-256 of its bytes (an unreadable file gets an empty
 *  hash; the calibration then skips or refuses it as it would without this). */
export function imageIdentities(files: readonly string[], root = '.'): ImageIdentity[] {
  return files.map((f) => {
    let sha256 = '';
    try {
      // Regular files only: a FIFO or /dev/zero in the folder must not block or fill memory here.
      sha256 = createHash('sha256').update(readFileOrFail(f, 'image')).digest('hex');
    } catch {
      // reported by the worker that reads it
    }
    return { name: relative(root, f).split('\\').join('/'), sha256 };
  });
}

export async function calibrateImages(model: Model, files: readonly string[], spec: SizedSpec, given?: ImageCalibrateOptions): Promise<Calibration> {
  checkModel(model, 'calibrateImages');
  check(Array.isArray(files) && files.every((f) => typeof f === 'string'), 'calibrateImages', 'files must be a list of image paths (openDataset(...).files)');
  check(isRecord(spec), 'calibrateImages', 'the spec must be a sized preprocessing spec (sizeSpec or presetSpec)');
  const options = optionsOf(given, 'calibrateImages');
  const requested = options.workers ?? availableParallelism();
  if (!Number.isInteger(requested) || requested < 1) fail('BAD_OPTION', `workers must be a positive integer, got ${options.workers}`);
  const workers = Math.max(1, Math.min(requested, files.length));
  const m = options.pixelInput ? model.withPixelInput(pixelAffine(spec)) : model;
  const load = options.pixelInput ? pixelSpec(spec) : spec;
  return runCalibration(m, {
    source: {
      ...options.source,
      preprocessing: spec,
      images: imageIdentities(files, options.imageRoot),
      ...(options.imageRoot ? { imageRoot: options.imageRoot } : {}),
      options: { pixelInput: !!options.pixelInput, ...options.source?.options },
    },
    items: () => files,
    count: files.length,
    key: (file) => file,
    // Undecodable, empty or oversized images are skipped (reported) unless strict.
    onItemError: (error) => skipImage(options, error),
    start: async (setup, calibrated) => workers === 1
      ? [new LocalWorker(await CalibrationWorker.create(calibrated, setup), imageLoader(load), setup.cacheBytes)]
      : startNodeWorkers(workers, { model: calibrated.parts(), setup, loader: load }),
  }, options);
}

/** Calibration from image files in Node: images are decoded and preprocessed as they stream
 *  through, one at a time, so memory does not grow with their number. */
import { calibrate, type Calibration } from '../calibration.js';
import { pixelAffine, pixelSpec, type SizedSpec } from '../data/preprocess.js';
import type { Model } from '../model.js';
import type { CalibrateOptions } from '../quant/calibrate.js';
import { loadImageTensor } from './images.js';

export interface ImageCalibrateOptions extends CalibrateOptions {
  /** Feed raw 0..255 pixels: the spec's affine map moves into the model (DESIGN.md §4). */
  pixelInput?: boolean;
}

export async function calibrateImages(model: Model, files: readonly string[], spec: SizedSpec, options: ImageCalibrateOptions = {}): Promise<Calibration> {
  const m = options.pixelInput ? model.withPixelInput(pixelAffine(spec)) : model;
  const load = options.pixelInput ? pixelSpec(spec) : spec;
  const samples = {
    async *[Symbol.asyncIterator]() {
      for (const f of files) yield await loadImageTensor(f, load);
    },
  };
  return calibrate(m, samples, options);
}

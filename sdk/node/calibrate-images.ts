/** Calibration from image files in Node: images are decoded and preprocessed as they stream
 *  through, one at a time, so memory does not grow with their number. */
import { calibrate, type Calibration } from '../calibration.js';
import type { SizedSpec } from '../data/preprocess.js';
import type { PixelAffine } from '../graph/transforms.js';
import type { Model } from '../model.js';
import type { CalibrateOptions } from '../quant/calibrate.js';
import { fail } from '../errors.js';
import { skipImage, type SkipPolicy } from './datasets.js';
import { loadImageTensor } from './images.js';

export interface ImageCalibrateOptions extends CalibrateOptions, SkipPolicy {
  /** Feed raw 0..255 pixels: the spec's affine map moves into the model (DESIGN.md §4). */
  pixelInput?: boolean;
}

/** The spec's per-channel affine map, in the model's channel order. */
export function pixelAffine(spec: SizedSpec): PixelAffine {
  return { scale: spec.scale, mean: [...spec.mean], std: [...spec.std], layout: spec.layout };
}

/** The spec that loads raw pixels: its geometry, without the affine map (the model applies it). */
export function pixelSpec(spec: SizedSpec): SizedSpec {
  return { ...spec, scale: 1, mean: [0, 0, 0], std: [1, 1, 1] };
}

export async function calibrateImages(model: Model, files: readonly string[], spec: SizedSpec, options: ImageCalibrateOptions = {}): Promise<Calibration> {
  const m = options.pixelInput ? model.withPixelInput(pixelAffine(spec)) : model;
  const load = options.pixelInput ? pixelSpec(spec) : spec;
  const reported = new Set<string>();
  const samples = {
    async *[Symbol.asyncIterator]() {
      let used = 0;
      for (const f of files) {
        let x: Float32Array;
        try {
          x = await loadImageTensor(f, load);
        } catch (e) {
          skipImage(options, e, reported);
          continue;
        }
        used++;
        yield x;
      }
      if (!used) fail('BAD_IMAGE', `none of the ${files.length} images could be used`);
    },
  };
  return calibrate(m, samples, options);
}

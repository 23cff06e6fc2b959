/**
 * calibration.json's "provenance" section: how a calibration was made — the tool, the model (its
 * SHA-256), the input shape, the preprocessing, the images (their count, a hash of their list and
 * each one's name and content hash), and every option with its value after defaults. It is what
 * eval, simulate and loadCalibration check a calibration against (the model) and take their
 * defaults from (the preprocessing, the input shape), and how eval finds images shared with the
 * calibration. Nothing in it depends on timings or on the number of workers.
 */
import type { PreprocessSpec } from '../data/preprocess.js';
import { fail } from '../errors.js';
import { sha256Hex, type Model } from '../model.js';
import { estimatorName } from '../quant/ranges.js';
import type { ResolvedOptions } from '../quant/calibrate.js';
import { TOOL_VERSION } from '../version.js';

/** One calibration image: a name (its path under the image folder, or the file's name) and the
 *  SHA-256 of its file. */
export interface ImageIdentity {
  name: string;
  sha256: string;
}

/** What the caller of a calibration knows about its samples beyond the model and the options. */
export interface CalibrationSource {
  /** The preprocessing that turned the images into the samples. */
  preprocessing?: PreprocessSpec;
  /** One per sample, in sample order (images left out of the calibration are dropped). */
  images?: ImageIdentity[];
  /** The folder or list file the image names are relative to. */
  imageRoot?: string;
  /** The model file's name, for messages, and its path (what `p2calib report` reloads). */
  modelFile?: string;
  modelPath?: string;
  /** Options applied outside calibrate() (pixel input, image selection, QDQ rounding, ...). */
  options?: Record<string, unknown>;
}

export interface Provenance {
  tool: { name: 'p2calib'; version: string };
  model: { sha256: string | null; file?: string; path?: string };
  /** Input shapes by input name, as calibrated. */
  inputShape: Record<string, number[]>;
  preprocessing: PreprocessSpec | null;
  images: {
    count: number;
    /** SHA-256 of the images' content hashes, one per line in calibration order (null when the
     *  samples were tensors without identities). */
    sha256: string | null;
    root?: string;
    files?: ImageIdentity[];
  };
  /** Every option, defaults filled in. Worker counts are left out: they do not change the result. */
  options: Record<string, unknown>;
}

/** The calibration options as calibration.json records them. */
export function recordedOptions(o: ResolvedOptions, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    preset: o.preset,
    bits: o.bits,
    sixteenBit: [...o.sixteenBit],
    sixteenBitWeights: [...o.sixteenBitWeights],
    floatNodes: [...o.floatNodes],
    mixedPrecision: o.mixedPrecision ?? null,
    iterations: o.iterations,
    batchSize: o.batchSize,
    biasCalibrationFactor: o.factor,
    biasCalibration: o.rules.biasCalibration ? o.biasCalibration : 'off',
    estimator: estimatorName(o.rules.estimator),
    weightClipping: o.rules.clipWeights,
    perChannelDepthwise: o.rules.perChannelDepthwise,
    biasMode: o.biasMode,
    keepClipBounds: o.keepClipBounds,
    equalize: o.equalize,
    subsample: o.subsampleSeed !== undefined,
    ...(o.subsampleSeed !== undefined ? { seed: o.subsampleSeed } : {}),
    ...extra,
  };
}

export async function buildProvenance(model: Model, options: ResolvedOptions, images: number, source: CalibrationSource = {}): Promise<Provenance> {
  const files = source.images;
  if (files && files.length !== images) fail('BAD_INPUT', `calibration source: ${files.length} image identities for ${images} images`);
  return {
    tool: { name: 'p2calib', version: TOOL_VERSION },
    model: { sha256: model.sha256 ?? null, ...(source.modelFile ? { file: source.modelFile } : {}), ...(source.modelPath ? { path: source.modelPath } : {}) },
    inputShape: Object.fromEntries(model.inputs.map((i) => [i.name, i.shape])),
    preprocessing: source.preprocessing ?? null,
    images: {
      count: images,
      sha256: files ? await sha256Hex(files.map((f) => `${f.sha256}\n`).join('')) : null,
      ...(source.imageRoot ? { root: source.imageRoot } : {}),
      ...(files ? { files } : {}),
    },
    options: recordedOptions(options, source.options),
  };
}

/** Refuse a calibration made for another model (when both sides know their model's hash). */
export function checkModel(provenance: Provenance | undefined, model: Pick<Model, 'sha256'>): void {
  const want = provenance?.model?.sha256;
  if (!want || !model.sha256 || want === model.sha256) return;
  const file = provenance!.model.file ? ` (${provenance!.model.file})` : '';
  fail('BAD_INPUT', `the calibration was made for another model${file}: its SHA-256 is ${want.slice(0, 16)}…, this model's is ${model.sha256.slice(0, 16)}…`);
}

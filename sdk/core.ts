/** The SDK's portable core: the same in Node (sdk/index.ts) and browsers (sdk/browser.ts), which add
 *  their platform's image decoding and file or worker access. */
export { loadModel, Model, type LoadOptions, type TensorInfo, type Feeds } from './model.js';
export { P2Error, type ErrorCode } from './errors.js';
export { calibrate, loadCalibration, Calibration } from './calibration.js';
export type { CalibrateOptions, CalibrationProgress, Preset, BiasCalibration, Sample, Samples } from './quant/calibrate.js';
export { tableJson, type CalibrationTable } from './export/table.js';
export type { PixelAffine } from './graph/transforms.js';
export { presetSpec, parseSpec, sizeSpec, pixelAffine, type PreprocessSpec, type SizedSpec, type PresetName } from './data/preprocess.js';
export type { RgbImage } from './data/resize.js';
export { activationHistograms, type TensorHistogram, type HistogramOptions } from './histograms.js';
export {
  calibrateImageSet, type ImageCalibrationJob, type ImageCalibrationResult, type ImageDecoder, type JobProgress,
} from './image-calibration.js';

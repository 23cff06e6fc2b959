/** p2calib SDK, Node entry point. */
export { loadModel, Model, type LoadOptions, type TensorInfo, type Feeds } from './model.js';
export { P2Error, type ErrorCode } from './errors.js';
export { calibrate, loadCalibration, Calibration } from './calibration.js';
export type { CalibrateOptions, CalibrationProgress, Preset, BiasCalibration, Sample, Samples } from './quant/calibrate.js';
export type { CalibrationTable } from './export/table.js';
export {
  PRESETS, presetSpec, parseSpec, sizeSpec, preprocess, geometry, normalize, affine, placement, planGeometry, finishGeometry,
  tensorSize, type PreprocessSpec, type SizedSpec, type PresetName, type GeometryPlan,
} from './data/preprocess.js';
export { resizeRgb, type RgbImage, type Interpolation } from './data/resize.js';
export { decodeImage, loadImageTensor, imageGeometry } from './node/images.js';

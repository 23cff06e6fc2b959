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
export { FixedPlan, type FixedPlanOptions, type FixedLayer, type FixedTensor, type IntArray, type MeansOf } from './engine/fixed.js';
export type { QuantSpec, TensorQ, LayerQ, BiasMode, Bits, QType } from './quant/spec.js';
export { captureTraces } from './trace/capture.js';
export { compareTraces, type TraceComparison, type LayerComparison } from './trace/compare.js';
export { traceFiles, traceName, parseTraceName, traceDims, DEFAULT_TRACE_BASE, type TraceLayer, type TraceDims } from './trace/format.js';
export { readTraceDir, writeTraceDir } from './node/traces.js';

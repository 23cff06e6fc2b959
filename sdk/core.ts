/** The SDK's portable core: the same in Node (sdk/index.ts) and browsers (sdk/browser.ts), which add
 *  their platform's image decoding and file or worker access. */
export { loadModel, Model, type LoadOptions, type TensorInfo, type Feeds } from './model.js';
export { P2Error, type ErrorCode } from './errors.js';
export { calibrate, loadCalibration, Calibration } from './calibration.js';
export type { CalibrateOptions, CalibrationProgress, Preset, BiasCalibration, Sample, Samples } from './quant/calibrate.js';
export type { MixedPrecisionReport, GroupChoice } from './quant/mixed.js';
export type { QdqRounding } from './export/qdq.js';
export { tableJson, type CalibrationTable } from './export/table.js';
export type { CalibrationSource, ImageIdentity, Provenance } from './export/provenance.js';
export type { PixelAffine } from './passes/transforms.js';
export { presetSpec, parseSpec, sizeSpec, pixelAffine, pixelSpec, type PreprocessSpec, type SizedSpec, type PresetName } from './data/preprocess.js';
// The fixed-point engine and TIDL trace files.
export { FixedPlan, type FixedPlanOptions, type FixedLayer, type FixedTensor, type IntArray, type MeansOf } from './engine/fixed.js';
export type { QuantSpec, TensorQ, LayerQ, BiasMode, Bits, QType } from './device/spec.js';
export { captureTraces } from './trace/capture.js';
export { compareTraces, type TraceComparison, type LayerComparison } from './trace/compare.js';
export { traceFiles, parseTraceName, DEFAULT_TRACE_BASE, type TraceLayer } from './trace/format.js';
export type { RgbImage } from './data/resize.js';
export { activationHistograms, type TensorHistogram, type HistogramOptions } from './histograms.js';
export {
  calibrateImageSet, type ImageCalibrationJob, type ImageCalibrationResult, type ImagePlatform, type JobProgress,
} from './image-calibration.js';

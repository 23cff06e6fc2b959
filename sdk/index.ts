/**
 * p2calib SDK, Node entry point. The core (loadModel, calibrate, loadCalibration) is the same in
 * browsers (sdk/browser.ts); the rest reads files and images with Node's fs and sharp.
 */
export { loadModel, Model, type LoadOptions, type TensorInfo, type Feeds } from './model.js';
export { P2Error, type ErrorCode } from './errors.js';
export { calibrate, loadCalibration, Calibration } from './calibration.js';
export type { CalibrateOptions, CalibrationProgress, Preset, BiasCalibration, Sample, Samples } from './quant/calibrate.js';
export type { CalibrationTable } from './export/table.js';
export type { PixelAffine } from './graph/transforms.js';
export { presetSpec, parseSpec, sizeSpec, type PreprocessSpec, type SizedSpec, type PresetName } from './data/preprocess.js';
// The fixed-point engine and TIDL trace files.
export { FixedPlan, type FixedPlanOptions, type FixedLayer, type FixedTensor, type IntArray, type MeansOf } from './engine/fixed.js';
export type { QuantSpec, TensorQ, LayerQ, BiasMode, Bits, QType } from './quant/spec.js';
export { captureTraces } from './trace/capture.js';
export { compareTraces, type TraceComparison, type LayerComparison } from './trace/compare.js';
export { traceFiles, parseTraceName, DEFAULT_TRACE_BASE, type TraceLayer } from './trace/format.js';

// Node only: images, datasets, calibration folders, evaluation.
export { decodeImage, loadImageTensor } from './node/images.js';
export { openDataset, type Dataset, type DatasetOptions } from './node/datasets.js';
export { calibrateImages, pixelAffine, type ImageCalibrateOptions } from './node/calibrate-images.js';
export { saveCalibration, readCalibration, CALIBRATION_FILES } from './node/calibration-files.js';
export { readTraceDir, writeTraceDir } from './node/traces.js';
export { evaluate, TASKS, type Task, type EvaluateOptions, type EvalResult, type Metrics } from './node/evaluate.js';

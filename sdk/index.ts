/**
 * p2calib SDK, Node entry point. The core (sdk/core.ts: loadModel, calibrate, loadCalibration, ...)
 * is the same in browsers (sdk/browser.ts); the rest reads files and images with Node's fs and sharp.
 */
export * from './core.js';
export { tidlConfig, readTidlOptions, mapTidlOptions, type TidlMapping } from './tidl-config.js';

// Node only: images, datasets, calibration folders, evaluation.
export { decodeImage, loadImageTensor } from './node/images.js';
export { openDataset, type Dataset, type DatasetOptions } from './node/datasets.js';
export { calibrateImages, type ImageCalibrateOptions } from './node/calibrate-images.js';
export { saveCalibration, readCalibration, CALIBRATION_FILES, type SaveOptions } from './node/calibration-files.js';
export { readTraceDir, writeTraceDir } from './node/traces.js';
export { evaluate, TASKS, type Task, type EvaluateOptions, type EvalResult, type Metrics, type DetectionOptions, type FixedRunner } from './node/evaluate.js';
export { PRIOR_PRESETS, parsePriorSpec, type PriorSpec } from './metrics/prior-box.js';

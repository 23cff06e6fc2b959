/** p2calib SDK, Node entry point. */
export * from './core.js';
export { decodeImage, decodeMask, loadImageTensor, imageGeometry, type Resizer } from './node/images.js';
export { openDataset, classificationLabels, shuffle, type Dataset, type DatasetOptions } from './node/datasets.js';
export { evaluate, TASKS, type Task, type EvaluateOptions, type EvalResult, type Metrics, type Runner } from './node/evaluate.js';

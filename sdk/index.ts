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
export { decodeImage, decodeMask, loadImageTensor, imageGeometry, type Resizer } from './node/images.js';
export { parseClassList, labelsFromList } from './data/labels.js';
export { openDataset, classificationLabels, shuffle, type Dataset, type DatasetOptions } from './node/datasets.js';
export { evaluate, TASKS, type Task, type EvaluateOptions, type EvalResult, type Metrics, type Runner } from './node/evaluate.js';
export { topK, TopKAccuracy, sameTop1 } from './metrics/classification.js';
export { decodeYolox, nms, iou, averagePrecision, DetectionAP, parseYoloLabels, type Box } from './metrics/detection.js';
export { MeanIoU, argmaxClasses, resizeLabels, mapMask, parseClassMap, COCO_PANOPTIC_TO_VOC, IGNORE, type ClassMap, type LabelMap } from './metrics/segmentation.js';
export { ErrorStats } from './metrics/error.js';

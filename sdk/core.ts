/** The portable SDK: everything that runs the same in Node and browsers (the entry points add
 *  their platform's image decoding and file or worker access). */
export { loadModel, Model, type LoadOptions, type TensorInfo, type Feeds } from './model.js';
export { P2Error, type ErrorCode } from './errors.js';
export { calibrate, loadCalibration, Calibration } from './calibration.js';
export type { CalibrateOptions, CalibrationProgress, Preset, BiasCalibration, Sample, Samples } from './quant/calibrate.js';
export { tableJson, type CalibrationTable } from './export/table.js';
export {
  PRESETS, presetSpec, parseSpec, sizeSpec, preprocess, geometry, normalize, affine, pixelAffine, placement, planGeometry, finishGeometry,
  tensorSize, type PreprocessSpec, type SizedSpec, type PresetName, type GeometryPlan,
} from './data/preprocess.js';
export { resizeRgb, type RgbImage, type Interpolation } from './data/resize.js';
export { activationHistograms, type TensorHistogram, type HistogramOptions } from './histograms.js';
export {
  calibrateImageSet, type ImageCalibrationJob, type ImageCalibrationResult, type ImageDecoder, type JobProgress,
} from './image-calibration.js';
export { inspectModel, type InspectReport } from './inspect.js';
export { parseClassList, labelsFromList } from './data/labels.js';
export { topK, TopKAccuracy, sameTop1 } from './metrics/classification.js';
export { decodeYolox, nms, iou, averagePrecision, DetectionAP, parseYoloLabels, type Box } from './metrics/detection.js';
export { MeanIoU, argmaxClasses, resizeLabels, mapMask, parseClassMap, COCO_PANOPTIC_TO_VOC, IGNORE, type ClassMap, type LabelMap } from './metrics/segmentation.js';
export { ErrorStats } from './metrics/error.js';

/** p2calib SDK, browser entry point (bundled as dist/browser/p2calib.js): the portable core, image
 *  decoding with createImageBitmap, and the client of the calibration Web Worker. */
export * from './core.js';
export { decodeImage, loadImageTensor, type ImageInput } from './browser/images.js';
export { CalibrationWorker } from './browser/client.js';
export type { EncodedImage } from './browser/protocol.js';
export type { InspectReport } from './inspect.js';
/** The preprocessing presets, for pages that offer them (presetSpec(name) gives one as a spec), and
 *  the checks the CLI makes of a preprocessing against a model's input. */
export { PRESETS, checkImageLayout, declaredLayout, imageInputShape } from './data/preprocess.js';
export { sha256Hex } from './model.js';

/** p2calib SDK, Node entry point. */
export * from './core.js';
export { decodeImage, loadImageTensor, imageGeometry } from './node/images.js';

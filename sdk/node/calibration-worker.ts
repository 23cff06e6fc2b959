/** Entry point of a calibration worker thread (started by sdk/node/pool.ts): items are image file
 *  paths, decoded and preprocessed here with the spec the coordinator sends at start. */
import { parentPort } from 'node:worker_threads';
import type { SizedSpec } from '../data/preprocess.js';
import { serveCalibrationWorker } from '../quant/protocol.js';
import { imageLoader } from './images.js';

const port = parentPort!;
serveCalibrationWorker(
  { post: (message, transfer) => port.postMessage(message, transfer), onMessage: (handler) => port.on('message', handler) },
  (spec) => imageLoader(spec as SizedSpec),
);

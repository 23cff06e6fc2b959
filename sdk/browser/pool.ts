/** Calibration workers on Web Workers: module workers running the SDK's worker script, each with
 *  its own WASM instance and copy of the model, decoding and preprocessing the images it is sent. */
import { startWorkers, type RemoteWorker, type WorkerEndpoint, type WorkerInit } from '../quant/protocol.js';
import type { EncodedImage } from './protocol.js';

function endpoint(w: Worker): WorkerEndpoint {
  return {
    post: (message, transfer) => w.postMessage(message, { transfer: transfer ?? [] }),
    onMessage: (handler) => { w.onmessage = (e) => handler(e.data); },
    onFailure: (handler) => {
      w.onerror = (e) => {
        e.preventDefault();
        handler(new Error(`calibration worker: ${e.message || 'could not start'}`));
      };
      w.onmessageerror = () => handler(new Error('calibration worker: a message could not be read'));
    },
    terminate: () => w.terminate(),
  };
}

/** Start `count` Web Workers running the worker script at `url` (p2calib-worker.js). */
export function startWebWorkers(count: number, init: WorkerInit, url: string | URL): Promise<RemoteWorker<EncodedImage>[]> {
  return startWorkers(Array.from({ length: count }, () => endpoint(new Worker(url, { type: 'module' }))), init);
}

/** Calibration workers on Node worker_threads: one thread, one WASM instance and one copy of the
 *  model per worker; each decodes and preprocesses the image files it is sent. */
import { Worker } from 'node:worker_threads';
import { startWorkers, type RemoteWorker, type WorkerEndpoint, type WorkerInit } from '../quant/protocol.js';

function endpoint(w: Worker): WorkerEndpoint {
  return {
    post: (message, transfer) => w.postMessage(message, transfer),
    onMessage: (handler) => w.on('message', handler),
    onFailure: (handler) => {
      w.on('error', handler);
      w.on('exit', (code) => handler(new Error(`calibration worker thread exited (code ${code})`)));
    },
    terminate: async () => {
      await w.terminate();
    },
  };
}

/** Start `count` worker threads serving sdk/node/calibration-worker.ts. */
export function startNodeWorkers(count: number, init: WorkerInit): Promise<RemoteWorker<string>[]> {
  return startWorkers(Array.from({ length: count }, () => endpoint(new Worker(new URL('./calibration-worker.js', import.meta.url)))), init);
}

/** Calibration workers on Node worker_threads: one thread, one WASM instance and one copy of the
 *  model per worker; each decodes and preprocesses the image files it is sent. */
import { Worker } from 'node:worker_threads';
import { RemoteWorker, type WorkerEndpoint, type WorkerInit } from '../quant/protocol.js';

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
export async function startNodeWorkers(count: number, init: WorkerInit): Promise<RemoteWorker<string>[]> {
  const started = await Promise.allSettled(
    Array.from({ length: count }, () => RemoteWorker.start<string>(endpoint(new Worker(new URL('./calibration-worker.js', import.meta.url))), init)),
  );
  const workers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(workers.map((w) => w.abort()));
    throw failed.reason;
  }
  return workers;
}

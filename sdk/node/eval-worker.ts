/** Entry point of an eval worker thread (started by eval-images.ts): runs the images it is sent
 *  through its own float and fixed-point models. */
import { parentPort } from 'node:worker_threads';
import { useKernelModule } from '../engine/wasm.js';
import { P2Error } from '../errors.js';
import { runnerFromInit, type EvalWorkerInit, type ImageOutputs } from './eval-images.js';

const port = parentPort!;
let run: ((file: string) => Promise<ImageOutputs>) | undefined;

port.on('message', (m: { id: number; op: 'init'; init: EvalWorkerInit } | { id: number; op: 'run'; file: string }) => {
  const answer = (p: Promise<ImageOutputs | undefined>) => p.then(
    (value) => port.postMessage({ id: m.id, value }),
    (e: Error) => port.postMessage({ id: m.id, error: { code: e instanceof P2Error ? e.code : undefined, message: e instanceof P2Error ? e.message : e.stack ?? e.message } }),
  );
  if (m.op === 'init') {
    answer((async () => {
      useKernelModule(m.init.kernels);
      run = runnerFromInit(m.init);
      return undefined;
    })());
  } else {
    answer(run ? run(m.file) : Promise.reject(new Error('not initialized')));
  }
});

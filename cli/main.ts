#!/usr/bin/env node
/** p2calib command line: dispatches to a command module, maps errors to exit codes
 *  (2: the user's input, 1: a bug in p2calib). */
import { P2Error } from '../sdk/errors.js';

interface Command { help: string; run(argv: string[]): Promise<number> }

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  inspect: { summary: 'show a model\'s inputs, outputs, ops and parameters', load: () => import('./commands/inspect.js') },
  demo: { summary: 'the built-in demo: calibrate PP-OCR\'s text-direction classifier on rendered text lines', load: () => import('./commands/demo.js') },
  calibrate: { summary: 'calibrate a float model on images; write QDQ, calibrated float ONNX and calibration.json', load: () => import('./commands/calibrate.js') },
  eval: { summary: 'measure a model\'s accuracy on images (float, and fixed point with --calibration)', load: () => import('./commands/eval.js') },
  simulate: { summary: 'run one image in fixed point and write every layer as TIDL trace files', load: () => import('./commands/simulate.js') },
  report: { summary: 'write the layer-by-layer HTML report of a calibration (and its table as CSV)', load: () => import('./commands/report.js') },
  compare: { summary: 'compare two folders of TIDL trace files layer by layer', load: () => import('./commands/compare.js') },
};

const USAGE = `p2calib — power-of-2 post-training calibration for TI TIDL deployment

Usage: p2calib <command> [options]    (p2calib <command> --help for details)

Commands:
${Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(10)} ${c.summary}`).join('\n')}`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) throw new P2Error('BAD_OPTION', `unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
  return (await cmd.load()).run(rest);
}

// Ctrl-C and kill end the run between two steps instead of wherever the signal lands: output
// files are written synchronously (sdk/node/files.ts), so an interrupted run leaves the old files
// or the complete new set, never a partial file or a stray temp file.
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.on(signal, () => {
    console.error(`p2calib: interrupted (${signal})`);
    process.exit(code);
  });
}

const verbose = process.argv.includes('--verbose');
main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    if (e instanceof P2Error) {
      console.error(`p2calib: error: ${e.message}`);
      if (verbose) console.error(e.stack);
      process.exitCode = 2;
    } else {
      const err = e as Error;
      console.error(`p2calib: internal error: ${err?.message ?? String(e)}${verbose ? '' : ' (run with --verbose for details)'}`);
      if (verbose) console.error(err?.stack);
      process.exitCode = 1;
    }
  },
);

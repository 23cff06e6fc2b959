/** Flag parsing shared by the commands (node:util parseArgs, strict: unknown flags are errors). */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { fail } from '../sdk/errors.js';
import type { Graph } from '../sdk/graph/ir.js';
import { checkImageLayout, imageInputShape as imageDims, type PreprocessSpec } from '../sdk/data/preprocess.js';
import type { SkipPolicy } from '../sdk/node/datasets.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export const COMMON: Options = {
  help: { type: 'boolean', short: 'h' },
  verbose: { type: 'boolean' },
  json: { type: 'boolean' },
};

export function parse(argv: string[], options: Options, positionals: string[]) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...COMMON, ...options }, allowPositionals: true, strict: true });
  } catch (e) {
    fail('BAD_OPTION', (e as Error).message.split('\n')[0]);
  }
  const { values, positionals: pos } = parsed;
  if (!values.help) {
    if (pos.length < positionals.length) fail('BAD_OPTION', `missing ${positionals.slice(pos.length).join(' and ')}`);
    if (pos.length > positionals.length) fail('BAD_OPTION', `unexpected argument "${pos[positionals.length]}"`);
  }
  return { values: values as Record<string, string | boolean | undefined>, pos };
}

/** "1,3,224,224" or "name:1,3,224,224;other:1,10". */
export function parseInputShape(text: string | undefined): number[] | Record<string, number[]> | undefined {
  if (text === undefined) return undefined;
  const dims = (s: string) => {
    const d = s.split(/[,x]/).map((v) => Number(v.trim()));
    if (!d.length || d.some((v) => !Number.isInteger(v) || v <= 0)) fail('BAD_OPTION', `--input-shape: "${s}" is not a list of positive integers`);
    return d;
  };
  if (!text.includes(':')) return dims(text);
  const out: Record<string, number[]> = {};
  for (const part of text.split(';')) {
    const i = part.lastIndexOf(':');
    out[part.slice(0, i)] = dims(part.slice(i + 1));
  }
  return out;
}

export function intOption(v: string | boolean | undefined, name: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) fail('BAD_OPTION', `--${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

/** A flag whose value is one of a list. */
export function choice<T extends string>(v: string | boolean | undefined, name: string, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) fail('BAD_OPTION', `--${name} must be one of ${allowed.join(', ')}, got "${v}"`);
  return v as T;
}

/** Commands that feed images run one image at a time: when no --input-shape is given, a dynamic
 *  batch dim becomes 1 and dynamic image dims come from the preprocessing size, if it has one
 *  (sdk/data/preprocess.ts, shared with the page); a layout the model contradicts is refused. */
export function imageInputShape(graph: Graph, given: ReturnType<typeof parseInputShape>, image?: PreprocessSpec): ReturnType<typeof parseInputShape> {
  if (graph.inputs.length !== 1) return given;
  const dims = graph.inputs[0].dims;
  if (image) checkImageLayout(dims, image.layout);
  return given ?? imageDims(dims, image);
}

/** --strict for the commands that read image folders: without it, files that are not images or
 *  cannot be decoded are skipped with a warning on stderr; with it, the first one is an error. */
export const STRICT_OPTION: Options = { strict: { type: 'boolean' } };
export const STRICT_HELP = `  --strict          refuse files that are not usable images (other files in the folder,
                    undecodable, empty or oversized images); by default they are skipped
                    with a warning`;

export function skipPolicy(values: Record<string, string | boolean | undefined>): SkipPolicy {
  return { strict: !!values.strict, onSkip: (message) => console.error(`p2calib: warning: ${message}`) };
}

/** Flag parsing shared by the commands: node:util parseArgs over each command's option table
 *  (COMMON plus the command's own), with p2calib's own one-line messages for the mistakes people
 *  make (an unknown or misspelt option, a missing value, a negative number). */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { closest, distance } from 'fastest-levenshtein';
import { fail, oneLine } from '../sdk/errors.js';
import type { Graph } from '../sdk/graph/ir.js';
import { checkImageLayout, imageInputShape as imageDims, type PreprocessSpec } from '../sdk/data/preprocess.js';
import type { SkipPolicy } from '../sdk/node/datasets.js';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | undefined>;

export const COMMON: Options = {
  help: { type: 'boolean', short: 'h' },
  verbose: { type: 'boolean' },
  json: { type: 'boolean' },
};

/** The nearest of `names` to a misspelt one, when it is near enough to be a likely typo. */
export function nearest(name: string, names: string[]): string | undefined {
  if (!names.length) return undefined;
  const best = closest(name, names);
  return distance(name, best) <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

// A value that starts with "-" is taken for the next option by parseArgs; negative numbers are
// values (e.g. --mean -1 or --limit -1, which then gets its own range message).
const NEGATIVE_NUMBER = /^-(\d|\.\d|Infinity\b|NaN\b)/;

/**
 * Check every option token against the table before parseArgs sees it, so that mistakes get a
 * message naming the option, and glue negative numbers to their option ("--limit=-1").
 */
function preflight(argv: string[], options: Options): string[] {
  const out: string[] = [];
  const longNames = Object.keys(options);
  const shorts = new Map(Object.entries(options).filter(([, o]) => o.short).map(([k, o]) => [o.short!, k]));
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (token === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (token.startsWith('--')) {
      const eq = token.indexOf('=');
      const name = token.slice(2, eq < 0 ? undefined : eq);
      const option = Object.hasOwn(options, name) ? options[name] : undefined;
      if (!option) {
        const near = nearest(name, longNames);
        fail('BAD_OPTION', `unknown option '--${name}'${near ? ` (did you mean --${near}?)` : ''}`);
      }
      if (option.type === 'boolean') {
        if (eq >= 0) fail('BAD_OPTION', `--${name} takes no value`);
      } else if (eq < 0) {
        const value = argv[i + 1];
        if (value === undefined || (value.startsWith('-') && !NEGATIVE_NUMBER.test(value))) fail('BAD_OPTION', `--${name} needs a value`);
        out.push(`--${name}=${value}`);
        i++;
        continue;
      }
    } else if (token.startsWith('-') && token.length > 1 && !NEGATIVE_NUMBER.test(token)) {
      for (const c of token.slice(1)) {
        if (!shorts.has(c)) fail('BAD_OPTION', `unknown option '-${c}'`);
      }
    }
    out.push(token);
  }
  return out;
}

/** Parse a command's arguments: its option table (plus COMMON) and its positional arguments. */
export function parse(argv: string[], options: Options, positionals: string[]): { values: Values; pos: string[] } {
  const table = { ...COMMON, ...options };
  let parsed;
  try {
    parsed = parseArgs({ args: preflight(argv, table), options: table, allowPositionals: true, strict: true });
  } catch (e) {
    fail('BAD_OPTION', (e as Error).message.split('\n')[0]);
  }
  const { values, positionals: pos } = parsed;
  if (!values.help) {
    if (pos.length < positionals.length) fail('BAD_OPTION', `missing ${positionals.slice(pos.length).join(' and ')}`);
    if (pos.length > positionals.length) fail('BAD_OPTION', `unexpected argument "${pos[positionals.length]}"`);
  }
  return { values: values as Values, pos };
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

export function intOption(v: string | boolean | undefined, name: string, min = 1, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && v.trim() ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min) fail('BAD_OPTION', `--${name} must be an integer >= ${min}, got "${v}"`);
  if (n > max) fail('BAD_OPTION', `--${name} must be at most ${max}, got "${v}"`);
  return n;
}

/** A finite number in [min, max] (or above min, exclusive, with `above`). */
export function numberOption(v: string | boolean | undefined, name: string, range: { min: number; max?: number; above?: boolean }): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && v.trim() ? Number(v) : NaN;
  const { min, max = Infinity, above = false } = range;
  if (!Number.isFinite(n) || (above ? n <= min : n < min) || n > max) {
    const want = `${above ? `> ${min}` : `>= ${min}`}${max < Infinity ? ` and <= ${max}` : ''}`;
    fail('BAD_OPTION', `--${name} must be a number ${want}, got "${v}"`);
  }
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

/** One warning line on stderr. */
export function warn(message: string): void {
  console.error(`p2calib: warning: ${oneLine(message)}`);
}

export function skipPolicy(values: Values): SkipPolicy {
  return { strict: !!values.strict, onSkip: warn };
}

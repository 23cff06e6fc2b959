/** --config FILE: a JSON object of a command's options by their flag names ({"preset": "advanced-dw",
 *  "bits": 16, "sixteen-bit": ["a", "b"]}); flags given on the command line win. */
import { fail } from '../sdk/errors.js';
import { readText } from '../sdk/node/datasets.js';
import type { Options } from './args.js';

export function withConfigFile(values: Record<string, string | boolean | undefined>, options: Options, file: string | undefined): Record<string, string | boolean | undefined> {
  if (file === undefined) return values;
  let doc: unknown;
  try {
    doc = JSON.parse(readText(file, 'config file'));
  } catch (e) {
    if (e instanceof SyntaxError) fail('BAD_OPTION', `--config ${file}: not valid JSON (${e.message})`);
    throw e;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail('BAD_OPTION', `--config ${file}: expected an object of options by flag name`);
  const out = { ...values };
  for (const [key, v] of Object.entries(doc)) {
    const spec = options[key];
    if (!spec || key === 'config' || key === 'help') fail('BAD_OPTION', `--config ${file}: "${key}" is not an option of this command`);
    if (out[key] !== undefined) continue;
    if (spec.type === 'boolean') {
      if (typeof v !== 'boolean') fail('BAD_OPTION', `--config ${file}: "${key}" must be true or false`);
      out[key] = v;
    } else {
      const list = Array.isArray(v) ? v : [v];
      if (!list.every((x) => typeof x === 'string' || typeof x === 'number')) fail('BAD_OPTION', `--config ${file}: "${key}" must be a string, a number or a list of them`);
      out[key] = list.join(',');
    }
  }
  return out;
}

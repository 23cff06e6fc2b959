/**
 * edgeai-tidl-tools compile options in, p2calib calibration options out: the runtime options a
 * TIDL user already has (examples/osrt_python/README.md, docs/tidl_fsg_quantization.md), as JSON,
 * YAML (edgeai-modelzoo's `session: runtime_options:` configs) or `key = value` lines. Each key
 * p2calib understands maps to an option (table in the README); every other key is named in a note
 * saying why it is ignored; a value p2calib cannot honour (quantization_scale_type other than 1,
 * tensor_bits 32) is an error.
 */
import { parse as parseYaml } from 'yaml';
import { fail } from './errors.js';
import type { CalibrateOptions, PresetRules } from './quant/calibrate.js';

export interface TidlMapping {
  /** Calibration options (merge them under your own). */
  options: CalibrateOptions;
  /** advanced_options:calibration_frames: how many images to calibrate on. */
  calibrationFrames?: number;
  /** One line per key: what it became, or why it was ignored. */
  notes: string[];
}

/** Keys read elsewhere or meaningless for a calibration, with the reason given for ignoring them. */
const IGNORED: Record<string, string> = {
  tidl_tools_path: 'a TIDL installation path', artifacts_folder: 'where TIDL writes its artifacts', platform: 'a TVM target',
  debug_level: 'TIDL\'s log and trace level (p2calib simulate writes traces)', max_num_subgraphs: 'a partitioning limit of TIDL',
  'advanced_options:inference_mode': 'a multi-DSP execution mode', 'advanced_options:num_cores': 'a multi-DSP execution mode',
  core_number: 'an inference-time core choice', core_start_idx: 'an inference-time core choice',
  'advanced_options:high_resolution_optimization': 'a TIDL performance option', 'advanced_options:add_data_convert_ops': 'a TIDL layout option',
  'advanced_options:prequantized_model': 'how TIDL reads a QDQ model (p2calib writes one: model.qdq.onnx)',
  'advanced_options:quant_params_proto_path': 'where TIDL reads quantization parameters (p2calib writes tidl_quant_params.prototxt: point this at it)',
  'advanced_options:max_num_subgraph_nodes': 'a partitioning limit of TIDL', 'object_detection:meta_layers_names_list': 'TIDL\'s detection post-processing',
  'object_detection:meta_arch_type': 'TIDL\'s detection post-processing', model_type: 'a hint for TIDL\'s import', c7x_codegen: 'a TVM code generation option',
  'allow_list:layer_name': 'allow lists are not supported: list the other nodes in deny_list:layer_name',
  ti_internal_nc_flag: 'internal to TI', 'advanced_options:output_feature_16bit_names_list_type': 'not a documented option',
};

/** The accuracy_level 9 switches and the preset rule each sets. */
const SWITCHES: Record<string, keyof PresetRules> = {
  'advanced_options:activation_clipping': 'estimator',
  'advanced_options:weight_clipping': 'clipWeights',
  'advanced_options:bias_calibration': 'biasCalibration',
  'advanced_options:channel_wise_quantization': 'perChannelDepthwise',
};

/** Parse the text of a TIDL options file (JSON, YAML or key = value) into flat key -> value. */
export function readTidlOptions(text: string, where = 'TIDL options'): Record<string, unknown> {
  let doc: unknown;
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    try {
      doc = JSON.parse(trimmed);
    } catch (e) {
      fail('BAD_OPTION', `${where}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
    }
  } else if (trimmed.split(/\r?\n/).every((l) => !l.trim() || l.trim().startsWith('#') || /^\s*[\w:.-]+\s*=/.test(l))) {
    doc = keyValues(trimmed, where);
  } else {
    try {
      doc = parseYaml(text);
    } catch (e) {
      fail('BAD_OPTION', `${where}: not valid YAML (${(e as Error).message.split('\n')[0]})`);
    }
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail('BAD_OPTION', `${where}: expected a mapping of option names to values`);
  // A model zoo config: the options sit in session.runtime_options.
  const d = doc as Record<string, unknown>;
  const session = d.session as Record<string, unknown> | undefined;
  const opts = (session && typeof session === 'object' && session.runtime_options) || d.runtime_options || d;
  if (typeof opts !== 'object' || opts === null) fail('BAD_OPTION', `${where}: runtime_options must be a mapping`);
  return flatten(opts as Record<string, unknown>);
}

/** `advanced_options: {calibration_frames: 20}` and `advanced_options:calibration_frames: 20` alike. */
function flatten(o: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v && typeof v === 'object' && !Array.isArray(v)) Object.assign(out, flatten(v as Record<string, unknown>, `${prefix}${k}:`));
    else out[`${prefix}${k}`] = v;
  }
  return out;
}

function keyValues(text: string, where: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  text.split(/\r?\n/).forEach((line, i) => {
    const l = line.replace(/\s+#.*$/, '').trim();
    if (!l || l.startsWith('#')) return;
    const m = /^([\w:.-]+)\s*=\s*(.*)$/.exec(l);
    if (!m) fail('BAD_OPTION', `${where}:${i + 1}: expected "key = value"`);
    const raw = m[2].trim().replace(/^(["'])(.*)\1$/, '$2');
    out[m[1]] = raw !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
  });
  return out;
}

function names(v: unknown, key: string): string[] {
  if (Array.isArray(v)) return v.map(String).map((s) => s.trim()).filter(Boolean);
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
  return fail('BAD_OPTION', `TIDL option ${key}: expected a comma-separated list of names, got ${JSON.stringify(v)}`);
}

function int(v: unknown, key: string, allowed?: number[]): number {
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || (allowed && !allowed.includes(n))) {
    fail('BAD_OPTION', `TIDL option ${key}: ${allowed ? `one of ${allowed.join(', ')}` : 'an integer'} expected, got ${JSON.stringify(v)}`);
  }
  return n;
}

/** Map TIDL compile options (flat keys, as readTidlOptions gives) to calibration options. */
export function mapTidlOptions(raw: Record<string, unknown>): TidlMapping {
  const options: CalibrateOptions = {};
  const notes: string[] = [];
  let calibrationFrames: number | undefined;
  const level = raw.accuracy_level === undefined ? 1 : int(raw.accuracy_level, 'accuracy_level', [0, 1, 9]);
  const rules: Partial<PresetRules> = {};
  const floatNodes: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    const note = (what: string) => notes.push(`${key} = ${JSON.stringify(value)}: ${what}`);
    switch (key) {
      case 'tensor_bits': {
        const b = int(value, key, [8, 16, 32]);
        if (b === 32) fail('BAD_OPTION', 'TIDL option tensor_bits = 32 is float inference on the PC: there is nothing to calibrate (use 8 or 16)');
        options.bits = b as 8 | 16;
        note(`bits ${b}`);
        break;
      }
      case 'accuracy_level':
        options.preset = level === 0 ? 'simple' : 'advanced';
        note(level === 0 ? 'preset simple (min/max ranges, no weight clipping, no bias calibration)'
          : level === 1 ? 'preset advanced (histogram ranges, weight clipping, bias calibration)'
            : 'preset advanced with the advanced_options switches below (unset switches take TIDL\'s defaults: 1, 1, 1, 0)');
        break;
      case 'advanced_options:calibration_frames':
        calibrationFrames = int(value, key);
        note(`calibrate on the first ${calibrationFrames} images (--limit)`);
        break;
      case 'advanced_options:calibration_iterations':
        options.iterations = int(value, key);
        note(`${options.iterations} bias-calibration passes over the images (--iterations)`);
        break;
      case 'advanced_options:mixed_precision_factor': {
        const f = typeof value === 'string' ? Number(value) : (value as number);
        if (f === -1) {
          note('no automatic mixed precision (TIDL\'s -1)');
          break;
        }
        if (!(typeof f === 'number' && f >= 1)) fail('BAD_OPTION', `TIDL option ${key}: a factor >= 1 (or -1) expected, got ${JSON.stringify(value)}`);
        options.mixedPrecision = { factor: f };
        note(`mixedPrecision { factor: ${f} }: the layers computed in 16 bits are chosen by measured sensitivity within ${f}x the all-8-bit cost (--mixed-precision)`);
        break;
      }
      case 'advanced_options:output_feature_16bit_names_list':
        options.sixteenBit = names(value, key);
        note(`activations and weights of ${options.sixteenBit.length} layer(s) in 16 bits (--sixteen-bit)`);
        break;
      case 'advanced_options:params_16bit_names_list':
        options.sixteenBitWeights = names(value, key);
        note(`weights and biases of ${options.sixteenBitWeights.length} layer(s) in 16 bits, activations unchanged`);
        break;
      case 'advanced_options:quantization_scale_type':
        if (int(value, key) !== 1) {
          fail('BAD_OPTION', `TIDL option ${key} = ${JSON.stringify(value)}: p2calib calibrates power-of-2 scales only (quantization_scale_type 1); set it to 1 and compile with the same`);
        }
        note('power-of-2 scales (what p2calib makes)');
        break;
      case 'deny_list':
      case 'deny_list:layer_type':
      case 'deny_list:layer_name':
        floatNodes.push(...names(value, key));
        note(`kept in float: ${names(value, key).join(', ')} (--float-nodes)`);
        break;
      default:
        if (key in SWITCHES) {
          const on = int(value, key, [0, 1]) === 1;
          if (level !== 9) {
            note(`ignored: read by TIDL only with accuracy_level = 9 (it is ${level})`);
            break;
          }
          const rule = SWITCHES[key];
          if (rule === 'estimator') rules.estimator = on ? undefined : { kind: 'minmax' };
          else rules[rule] = on;
          note(`${rule === 'estimator' ? (on ? 'histogram ranges (0.01 % tails)' : 'min/max ranges') : `${rule} ${on}`}`);
        } else if (key in IGNORED) {
          note(`ignored: ${IGNORED[key]}`);
        } else {
          note('ignored: not a TIDL compile option p2calib knows');
        }
    }
  }
  if (raw['advanced_options:quantization_scale_type'] === undefined) {
    notes.push('quantization_scale_type (absent; TIDL\'s default 0 is non-power-of-2): p2calib\'s scales are power-of-2, so compile with quantization_scale_type = 1');
  }
  if (level === 9) {
    options.preset = 'advanced';
    // TIDL's defaults for unset switches: clipping on, bias calibration on, per-channel off.
    const r: Partial<PresetRules> = { clipWeights: true, biasCalibration: true, perChannelDepthwise: false, ...rules };
    if (r.estimator === undefined) delete r.estimator;
    options.rules = r;
  }
  if (floatNodes.length) options.floatNodes = floatNodes;
  return { options, calibrationFrames, notes };
}

/** readTidlOptions + mapTidlOptions. */
export function tidlConfig(text: string, where?: string): TidlMapping {
  return mapTidlOptions(readTidlOptions(text, where));
}

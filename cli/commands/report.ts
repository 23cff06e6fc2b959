import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Calibration } from '../../sdk/calibration.js';
import { parseSpec, pixelSpec, presetSpec, sizeSpec } from '../../sdk/data/preprocess.js';
import { fail } from '../../sdk/errors.js';
import { loadModel } from '../../sdk/model.js';
import { readCalibration, readCalibrationTable, recordedInputShape } from '../../sdk/node/calibration-files.js';
import { openDataset } from '../../sdk/node/datasets.js';
import { readModelFile, writeFilesAtomic } from '../../sdk/node/files.js';
import { loadImageTensor } from '../../sdk/node/images.js';
import { layersCsv, reportData, reportHtml } from '../../sdk/report.js';
import { intOption, parse, parseInputShape } from '../args.js';

export const help = `Usage: p2calib report CAL_DIR [--out report.html] [--csv layers.csv] [options]

Write the layer-by-layer report of a calibration (a folder written by p2calib calibrate) as one
self-contained HTML file (no script, nothing fetched): the per-layer SQNR chart, each tensor's
activation histogram with its calibrated range and power-of-2 clip, each weight layer's
per-channel weight ranges against the chosen scale, the diagnostics calibration.json holds, a
float-vs-fixed scatter of the outputs, and the per-layer table. Histograms and scatter run the
float and fixed-point models again on the first calibration images, found from calibration.json
(the model and image paths calibrate recorded) or given here.

Options:
  --out F         the HTML file (default CAL_DIR/report.html); an existing file needs --force
  --csv F         also write the per-layer table as CSV
  --model M       the float model (default: the path recorded in calibration.json)
  --images P      images for the histograms (default: the calibration's own, from calibration.json)
  --limit N       images to run (default 16)
  --input-shape S model input shape (default: the recorded one)
  --force         overwrite --out and --csv`;

/** The report's data for a calibration and image files, written as HTML (and CSV). */
export async function writeReport(cal: Calibration, images: string[], title: string, out: string, csv?: string): Promise<void> {
  const spec = cal.preprocessing ? sizeSpec(parseSpec(cal.preprocessing), cal.model.inputs[0].shape) : sizeSpec(presetSpec('imagenet'), cal.model.inputs[0].shape);
  const load = cal.model.pixelInput ? pixelSpec(spec) : spec;
  const samples = [];
  for (const f of images) samples.push(await loadImageTensor(f, load));
  const html = reportHtml(await reportData(cal, samples, title));
  writeFilesAtomic([{ path: out, data: html }, ...(csv ? [{ path: csv, data: layersCsv(cal.table) }] : [])]);
}

export async function run(argv: string[]): Promise<number> {
  const { values, pos } = parse(argv, {
    out: { type: 'string' }, csv: { type: 'string' }, model: { type: 'string' }, images: { type: 'string' }, limit: { type: 'string' },
    'input-shape': { type: 'string' }, force: { type: 'boolean' },
  }, ['CAL_DIR']);
  if (values.help) return console.log(help), 0;
  const table = readCalibrationTable(pos[0]);
  const out = resolve((values.out as string | undefined) ?? join(pos[0], 'report.html'));
  const csv = values.csv === undefined ? undefined : resolve(values.csv as string);
  for (const f of [out, csv]) if (f && existsSync(f) && !values.force) fail('IO', `${f} exists; pass --force to overwrite it`);
  const prov = table.provenance;
  const modelPath = (values.model as string | undefined) ?? prov?.model?.path;
  if (!modelPath) fail('BAD_OPTION', 'calibration.json does not say where its model is: pass --model');
  if (!existsSync(modelPath)) fail('IO', `the model ${modelPath} is gone; pass --model`);
  const limit = intOption(values.limit, 'limit') ?? 16;
  let images: string[];
  if (values.images !== undefined) {
    images = openDataset(values.images as string, { limit }).files;
  } else {
    const root = prov?.images?.root;
    if (!root || !prov?.images?.files) fail('BAD_OPTION', 'calibration.json does not list its images: pass --images');
    images = prov.images.files.slice(0, limit).map((f) => join(root, f.name)).filter((f) => existsSync(f));
    if (!images.length) fail('IO', `none of the calibration images is in ${root} any more; pass --images`);
  }
  const { bytes, options } = readModelFile(modelPath);
  const shape = parseInputShape(values['input-shape'] as string | undefined) ?? recordedInputShape(table);
  const model = await loadModel(bytes, { ...options, inputShape: shape });
  const cal = readCalibration(model, table);
  await writeReport(cal, images, basename(modelPath), out, csv);
  console.log(`wrote ${out}${csv ? ` and ${csv}` : ''} (${Object.keys(table.tensors).length} tensors, ${images.length} images)`);
  return 0;
}

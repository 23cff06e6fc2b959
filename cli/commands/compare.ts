import { readTraceDir } from '../../sdk/node/traces.js';
import { compareTraces, type LayerComparison } from '../../sdk/trace/compare.js';
import { intOption, parse } from '../args.js';

export const help = `Usage: p2calib compare DIR_A DIR_B [--tolerance N] [--json]

Compare two folders of TIDL trace files (from p2calib simulate, TIDL's PC emulation or the
device with debug_level=3) layer by layer: bit-exact or not, how many elements differ, the
largest difference and the first differing element; then name the first mismatching layer.
Both trace name forms are read (with and without dim1/dim2). Missing, extra, malformed and
size-mismatched files are listed, and so are files that cannot be read (dangling links, FIFOs,
devices, folders, links to files outside their folder).

Exit code: 0 when every layer matches bit for bit (or within --tolerance) and no file is
missing or malformed, 1 when they differ, 2 on bad input (a folder that does not exist).

Options:
  --tolerance N   a layer matches when no element differs by more than N integer steps
                  (default 0: bit-exact); differing layers are still listed
  --json   print one JSON object {match, layers: [...], problems: [...], firstMismatch}`;

const line = (l: LayerComparison, tolerance: number) =>
  `  ${String(l.dataId).padStart(4, '0')} ${l.name} [${l.type} ${l.dims}]: ${l.bitExact ? 'bit-exact'
    : `${l.mismatches} of ${l.elements} differ, max |diff| ${l.maxAbsDiff}${tolerance && l.maxAbsDiff <= tolerance ? ` (within ${tolerance})` : ''}, first at ${l.firstMismatch} (${l.values![0]} vs ${l.values![1]})`}`;

export async function run(argv: string[]): Promise<number> {
  const { values, pos } = parse(argv, { tolerance: { type: 'string' } }, ['DIR_A', 'DIR_B']);
  if (values.help) return console.log(help), 0;
  const tolerance = intOption(values.tolerance, 'tolerance', 0) ?? 0;
  const unreadable: string[] = [];
  const r = compareTraces(readTraceDir(pos[0], unreadable), readTraceDir(pos[1], unreadable), [pos[0], pos[1]], tolerance, unreadable);
  if (values.json) {
    console.log(JSON.stringify(r));
    return r.match ? 0 : 1;
  }
  const differing = r.layers.filter((l) => l.maxAbsDiff > tolerance).length;
  console.log([
    `layers compared: ${r.layers.length}`,
    ...r.layers.map((l) => line(l, tolerance)),
    ...(r.problems.length ? ['problems:', ...r.problems.map((p) => `  ${p}`)] : []),
    r.firstMismatch ? `first mismatching layer: ${String(r.firstMismatch.dataId).padStart(4, '0')} ${r.firstMismatch.name}` : '',
    r.match ? `result: MATCH (every layer ${tolerance ? `within ${tolerance} step${tolerance > 1 ? 's' : ''}` : 'bit-exact'})`
      : `result: MISMATCH (${differing} of ${r.layers.length} layers differ, ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'})`,
  ].filter(Boolean).join('\n'));
  return r.match ? 0 : 1;
}

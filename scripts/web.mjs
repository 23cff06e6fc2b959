// npm run web: serve the calibration page (web/) and the browser bundles (dist/) on this machine,
// building them first if they are missing. Options: --port N (default 8080, 0: any free port),
// --host H (default 127.0.0.1).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' }, host: { type: 'string', default: '127.0.0.1' } } });
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port: "${values.port}" is not a port number`);
  process.exit(2);
}
if (!existsSync(join(root, 'dist/browser/p2calib.js'))) {
  console.log('building the browser bundles first (npm run build)…');
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' });
}

// URL paths are looked up in these folders, in order: the page's sources, its bundled script,
// then the SDK bundles it imports.
const folders = ['web', 'dist/web', 'dist/browser'].map((d) => join(root, d));
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json', '.json': 'application/json', '.png': 'image/png', '.ico': 'image/x-icon',
};

const server = createServer((req, res) => {
  let path;
  try {
    path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  } catch {
    path = '';
  }
  if (path.endsWith('/')) path += 'index.html';
  const file = req.method === 'GET' || req.method === 'HEAD'
    ? folders.map((d) => join(d, path)).find((f) => folders.some((d) => f.startsWith(d + sep)) && existsSync(f) && statSync(f).isFile())
    : undefined;
  if (!file || !TYPES[extname(file)]) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  res.writeHead(200, { 'content-type': TYPES[extname(file)], 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : readFileSync(file));
});
server.on('error', (e) => {
  console.error(e.code === 'EADDRINUSE' ? `port ${port} is in use; try --port 0 for any free port` : e.message);
  process.exit(1);
});
server.listen(port, values.host, () => {
  console.log(`p2calib page: http://${values.host}:${server.address().port}/  (Ctrl+C to stop)`);
});

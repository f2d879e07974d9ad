// snippet.mjs runs one client snippet of Fizz's README as a browser page
// would, for the Go test TestReadmeSnippets. The snippet comes on stdin;
// argv[2] says how a page loads it:
//
//   module  an ES module built by a bundler (Vite, webpack): each
//           `import Name from 'package';` gets the package's browser entry
//           from test/jsclient/node_modules, as a bundler would pick it.
//   html    a page's <script> tags, in order: a src on a CDN
//           (https://cdn.jsdelivr.net/npm/<package>@<version>/<file> or
//           unpkg.com) loads that file of the installed package, which
//           must be that version; inline scripts run as classic scripts.
//
// Either way `window` is the global object, as in a page, and the
// browser's WebSocket is Node's. What the snippet logs goes to stdout.
// The process ends after argv[3] ms (default 30 s).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import vm from 'node:vm';

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, 'node_modules');
const require = createRequire(import.meta.url);

const [kind, lifetime = '30000'] = process.argv.slice(2);
setTimeout(() => process.exit(0), Number(lifetime)).unref();

function fail(message) {
  console.error(`snippet: ${message}`);
  process.exit(2);
}

if (typeof WebSocket === 'undefined') {
  fail(`Node ${process.version} has no WebSocket: run it with --experimental-websocket (Node 20) or use Node 22+`);
}
// A page's globals that the browser builds look for.
globalThis.window = globalThis;
globalThis.self = globalThis;
globalThis.location ??= new URL('http://127.0.0.1/');
globalThis.navigator ??= { userAgent: `Node.js/${process.version}`, onLine: true };
globalThis.addEventListener ??= () => {};
globalThis.removeEventListener ??= () => {};
// A loaded page's document: pusher-js connects once it has a body. It
// has no elements, so the JSONP and SockJS fallbacks are not available.
globalThis.document ??= {
  body: {},
  location: globalThis.location,
  readyState: 'complete',
  addEventListener() {},
  removeEventListener() {},
  getElementsByTagName: () => [],
  querySelector: () => null,
  createElement() {
    throw new Error('snippet.mjs has no DOM: use enabledTransports [\'ws\'] or [\'ws\', \'wss\']');
  },
};
// A page's uncaught error, without the minified line Node would print.
const uncaught = (err) => fail(err instanceof Error ? `${err.name}: ${err.message}` : `thrown: ${err}`);
process.on('uncaughtException', uncaught);
process.on('unhandledRejection', uncaught);

// pkg reads an installed package's package.json, failing if it is not
// installed or, when want is given, not that version or major.
function pkg(name, want) {
  let meta;
  try {
    meta = JSON.parse(readFileSync(join(modules, name, 'package.json'), 'utf8'));
  } catch {
    fail(`${name} is not installed: npm install --prefix test/jsclient`);
  }
  if (want && meta.version !== want && !meta.version.startsWith(`${want}.`)) {
    fail(`the snippet asks for ${name}@${want}, test/jsclient has ${meta.version}`);
  }
  return meta;
}

// browserEntry loads a package as a bundler building for the browser
// would: its exports' browser or import condition, else its browser
// field, else module, else main. It returns the default export.
async function browserEntry(name) {
  const meta = pkg(name);
  const dot = meta.exports && (typeof meta.exports === 'string' ? meta.exports : meta.exports['.']);
  let file = typeof dot === 'object' ? dot.browser || dot.import : dot;
  let esm = Boolean(file) && (typeof dot !== 'object' || !dot.browser);
  if (!file && typeof meta.browser === 'string') file = meta.browser;
  if (!file && meta.module) {
    file = meta.module;
    esm = true;
  }
  file ||= meta.main || 'index.js';
  const path = join(modules, name, file);
  if (esm || file.endsWith('.mjs') || (meta.type === 'module' && !file.endsWith('.cjs'))) {
    const m = await import(pathToFileURL(path).href);
    return m.default ?? m;
  }
  const m = require(path);
  return m && m.__esModule ? m.default : m;
}

async function runModule(code) {
  const loaded = {};
  const importLine = /^\s*import\s+([A-Za-z_$][\w$]*)\s+from\s+(['"])([^'"]+)\2;?\s*$/gm;
  for (const [, , , name] of code.matchAll(importLine)) {
    loaded[name] ??= await browserEntry(name);
  }
  globalThis.__snippetImports = loaded;
  const body = code.replace(importLine, (_, local, _q, name) =>
    `const ${local} = globalThis.__snippetImports[${JSON.stringify(name)}];`);
  if (/^\s*import\b/m.test(body)) {
    fail('only `import Name from \'package\';` imports are supported');
  }
  // A module body, as a bundler emits it: its own scope, strict mode.
  new vm.Script(`(async () => { 'use strict';\n${body}\n})()`, { filename: 'snippet.js' }).runInThisContext();
}

function runHTML(html) {
  const script = /<script(?:\s+src="([^"]*)")?\s*>([\s\S]*?)<\/script>/g;
  const cdn = /^https:\/\/(?:cdn\.jsdelivr\.net\/npm|unpkg\.com)\/((?:@[^/@]+\/)?[^/@]+)@([^/]+)\/(.+)$/;
  let ran = 0;
  for (const [, src, inline] of html.matchAll(script)) {
    if (src) {
      const m = cdn.exec(src);
      if (!m) fail(`script src ${src} is not a CDN URL of an npm package`);
      const [, name, version, file] = m;
      pkg(name, version);
      const path = join(modules, name, file);
      let text;
      try {
        text = readFileSync(path, 'utf8');
      } catch {
        fail(`${name} has no ${file}`);
      }
      vm.runInThisContext(text, { filename: src });
    } else {
      vm.runInThisContext(inline, { filename: 'inline.js' });
    }
    ran++;
  }
  if (ran === 0) fail('no <script> tag in the snippet');
}

const code = readFileSync(0, 'utf8');
switch (kind) {
  case 'module':
    await runModule(code);
    break;
  case 'html':
    runHTML(code);
    break;
  default:
    fail(`unknown kind ${kind}: module or html`);
}

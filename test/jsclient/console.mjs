// console.mjs drives Fizz's debug console page in Debian's chromium through
// playwright-core, for test/console_browser_test.go. argv: the page's URL,
// chromium's path, a fresh user-data directory and a lifetime in ms. It
// reads one JSON command a line on stdin and answers each with one JSON
// line on stdout carrying the command's id:
//
//   {"id":1,"op":"wait","selector":"#log","text":"abc","timeout":10000}
//       answers {"id":1,"started":true} at once, then {"id":1,"ok":true}
//       when the element's text contains text (or ok:false, error)
//   {"id":2,"op":"fill","selector":"#ev-channel","value":"x"}
//   {"id":3,"op":"click","selector":"button[type=submit]"}
//   {"id":4,"op":"text","selector":"#connections"}   answers text
//   {"id":6,"op":"select","selector":"#window","value":"300"}
//   {"id":5,"op":"screenshot","path":"/tmp/x.png"}
//
// It writes {"id":0,"ready":true} once the page shows its feed as live, and
// ends when stdin closes or after its lifetime, whatever happens.
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const [url, executablePath, userDataDir, lifetimeArg] = process.argv.slice(2);
const lifetime = Number(lifetimeArg || 60000);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
setTimeout(() => { out({ id: 0, fatal: `still running after ${lifetime} ms` }); process.exit(3); }, lifetime).unref();

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 820 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const page = context.pages()[0] || await context.newPage();
page.on('pageerror', (err) => out({ id: 0, pageerror: String(err) }));
await page.goto(url);
await page.waitForFunction(() => document.getElementById('feed-state').textContent === 'live', null, { timeout: 20000 });
out({ id: 0, ready: true });

async function run(cmd) {
  switch (cmd.op) {
    case 'wait':
      out({ id: cmd.id, started: true });
      await page.waitForFunction(([sel, text]) => {
        const el = document.querySelector(sel);
        return el !== null && el.textContent.includes(text);
      }, [cmd.selector, cmd.text], { timeout: cmd.timeout || 10000, polling: 'raf' });
      return {};
    case 'fill':
      await page.fill(cmd.selector, cmd.value);
      return {};
    case 'click':
      await page.click(cmd.selector);
      return {};
    case 'select':
      await page.selectOption(cmd.selector, cmd.value);
      return {};
    case 'text':
      return { text: await page.textContent(cmd.selector) };
    case 'screenshot':
      await page.screenshot({ path: cmd.path, fullPage: true });
      return {};
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  let cmd;
  try { cmd = JSON.parse(line); } catch { out({ id: -1, ok: false, error: 'bad command' }); continue; }
  try {
    out({ id: cmd.id, ok: true, ...(await run(cmd)) });
  } catch (err) {
    out({ id: cmd.id, ok: false, error: String(err && err.message || err) });
  }
}
await context.close();
process.exit(0);

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { tinyConfig, tmpDir, writeJson, writeModule } from './helpers';

const cli = path.join(__dirname, '..', 'src', 'cli.js');

interface Run {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  /** Resolves once `text` was printed to stdout or stderr. */
  printed: (text: string) => Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** `tapfit <args>` in `cwd`; with `tty`, stdout claims to be a terminal (a preload), so the CLI draws its cli-progress bar into the pipe. */
function start(args: string[], cwd: string, tty: boolean): Run {
  const preload = writeModule(cwd, 'tty.js', 'Object.assign(process.stdout, { isTTY: true, columns: 100 });\n');
  const child = spawn(process.execPath, [...(tty ? ['-r', preload] : []), cli, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiting: { text: string; resolve: () => void }[] = [];
  const check = () => {
    for (const w of [...waiting]) if ((out + err).includes(w.text)) (waiting.splice(waiting.indexOf(w), 1), w.resolve());
  };
  child.stdout!.on('data', (d) => ((out += d), check()));
  child.stderr!.on('data', (d) => ((err += d), check()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, at: performance.now() })));
  const printed = (text: string) =>
    new Promise<void>((resolve, reject) => {
      waiting.push({ text, resolve });
      check();
      void exited.then(() => reject(new Error(`tapfit exited before printing '${text}': ${out}\n${err}`)));
    });
  return { child, out: () => out, err: () => err, printed, exited };
}

const count = (text: string, code: string) => text.split(code).length - 1;

/** The terminal is as it was: the cursor shown and line wrap on as often as the bars hid and turned it off, and the last line ended. */
function expectTerminalRestored(out: string): void {
  expect(count(out, '\u001b[?25l'), 'bars drawn').to.be.at.least(1);
  expect(count(out, '\u001b[?25h'), 'cursor shown again').to.equal(count(out, '\u001b[?25l'));
  expect(count(out, '\u001b[?7h'), 'line wrap on again').to.equal(count(out, '\u001b[?7l'));
  expect(out.endsWith('\n'), 'the bar line is ended').to.equal(true);
}

/** Long enough to interrupt: 1125 batches of an MLP on cpu, checkpoints in ./ckpt. */
const longConfig = (overrides: Record<string, unknown> = {}) =>
  tinyConfig({ data: { dataset: 'mnist', train: 9000, test: 100 }, training: { epochs: 1, batchSize: 8 }, checkpoint: { dir: 'ckpt' }, log: { progress: true }, ...overrides });

describe('tapfit CLI: Ctrl-C, SIGTERM and failures leave the terminal and the checkpoints whole', function () {
  this.timeout(180000);

  it('Ctrl-C on a terminal stops after the batch, saves a checkpoint there, restores the terminal and ends by SIGINT (status 130); --resume continues there', async () => {
    const dir = tmpDir();
    writeJson(longConfig(), dir);
    const run = start(['train', 'config.json'], dir, true);
    await run.printed(' batches |');
    run.child.kill('SIGINT');
    const { signal } = await run.exited;
    expect(signal, run.err()).to.equal('SIGINT');
    expectTerminalRestored(run.out());
    expect(run.err()).to.contain('SIGINT: stopping after the current batch and saving a checkpoint; press Ctrl-C again to quit at once.');
    const at = /interrupted at epoch 1, batch (\d+) \(step (\d+)\); the checkpoint in '.*ckpt' holds it: run the same command with --resume to continue\./.exec(run.err());
    expect(at, run.err()).to.not.equal(null);
    const batch = Number(at![1]);
    expect(batch).to.be.within(1, 1124);
    expect(fs.readFileSync(path.join(dir, 'ckpt', 'LATEST'), 'utf8').trim()).to.equal(`step-${batch}`);

    const resumed = spawnSync(process.execPath, [cli, 'train', 'config.json', '--resume'], { cwd: dir, encoding: 'utf8' });
    expect(resumed.status, resumed.stderr).to.equal(0);
    expect(resumed.stdout).to.contain(`at epoch 1, batch ${batch} (step ${batch})`);
    expect(resumed.stdout).to.match(/test: loss/);
  });

  it('SIGTERM, not on a terminal: the same stop and checkpoint, no control codes, ends by SIGTERM (status 143)', async () => {
    const dir = tmpDir();
    writeJson(longConfig({ log: { progress: true, metrics: 'metrics.jsonl' } }), dir);
    const run = start(['train', 'config.json'], dir, false);
    await run.printed('hooks (in run order)');
    await new Promise((r) => setTimeout(r, 1500));
    run.child.kill('SIGTERM');
    const { signal } = await run.exited;
    expect(signal, run.err()).to.equal('SIGTERM');
    expect(run.out()).not.to.match(/\u001b\[/);
    expect(run.err()).to.contain('SIGTERM: stopping after the current batch and saving a checkpoint; send SIGTERM again to quit at once.');
    const batch = Number(/interrupted at epoch 1, batch (\d+)/.exec(run.err())?.[1]);
    expect(fs.readFileSync(path.join(dir, 'ckpt', 'LATEST'), 'utf8').trim()).to.equal(`step-${batch}`);
  });

  it('a second Ctrl-C quits at once (the first is still finishing its batch), with the terminal restored', async () => {
    const dir = tmpDir();
    writeJson(longConfig(), dir);
    // A batch that takes a minute: the first Ctrl-C cannot finish it.
    writeModule(dir, 'slow.js', "exports.tapfitPlugin = () => ({ name: 'slow', core: '^0.1.0', apply({ hooks }) { hooks.batchEnd.tap({}, async ({ batch }) => { if (batch === 3) { console.error('slow batch'); await new Promise((r) => setTimeout(r, 60000)); } }); } });\n");
    const run = start(['train', 'config.json', '--local-plugin', './slow.js'], dir, true);
    await run.printed('slow batch');
    run.child.kill('SIGINT');
    await run.printed('press Ctrl-C again to quit at once');
    const second = performance.now();
    run.child.kill('SIGINT');
    const { signal, at } = await run.exited;
    expect(signal).to.equal('SIGINT');
    expect(at - second, 'ms from the second Ctrl-C to the exit').to.be.below(5000);
    expectTerminalRestored(run.out());
  });

  it("a run killed outright (SIGKILL) leaves its report's step-record file; the next run reporting into that folder removes it", async () => {
    const dir = tmpDir();
    writeJson(longConfig({ checkpoint: undefined }), dir);
    const report = path.join(dir, 'report');
    const spools = () => (fs.existsSync(report) ? fs.readdirSync(report).filter((f) => f.startsWith('.steps.jsonl.tmp-')) : []);
    const run = start(['train', 'config.json', '--report', 'report'], dir, false);
    for (const deadline = performance.now() + 120_000; !spools().length && performance.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    run.child.kill('SIGKILL');
    const { signal } = await run.exited;
    expect(signal, run.err()).to.equal('SIGKILL');
    const left = spools();
    expect(left, 'what the killed run left').to.have.length(1);
    writeJson(tinyConfig({ training: { epochs: 1, batchSize: 20 } }), dir, 'short.json');
    const next = spawnSync(process.execPath, [cli, 'train', 'short.json', '--report', 'report'], { cwd: dir, encoding: 'utf8' });
    expect(next.status, next.stderr).to.equal(0);
    expect(fs.readdirSync(report).sort()).to.deep.equal(['report.html', 'report.json']);
  });

  it('a run that fails mid-epoch on a terminal restores it and prints the error on a fresh line (exit 1)', async () => {
    const dir = tmpDir();
    writeJson(tinyConfig({ training: { epochs: 1, batchSize: 20 }, log: { progress: true } }), dir);
    writeModule(dir, 'late.js', "exports.tapfitPlugin = () => ({ name: 'late-fail', core: '^0.1.0', apply({ hooks }) { hooks.batchEnd.tap({}, ({ batch }) => { if (batch === 5) throw new Error('failed at batch 5'); }); } });\n");
    const run = start(['train', 'config.json', '--local-plugin', './late.js'], dir, true);
    const { code } = await run.exited;
    expect(code).to.equal(1);
    expectTerminalRestored(run.out());
    expect(run.err()).to.equal("error [TAPFIT_E_PLUGIN_FAILED]: plugin 'late-fail' failed in hook 'batchEnd': failed at batch 5\n");
  });
});

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import type { TrainerDescription } from '@tapfit/core';
import { configSchema } from '../src/config';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import { writeReport } from '../src/report/report-dir';
import { renderReport, type ReportData } from '../src/report/report-html';
import type { StepRecord } from '../src/report/report-plugin';
import { StepSummary } from '../src/report/step-summary';
import { runConfig, type RunResult } from '../src/run-config';
import { findChromium, launchChromium } from './browser';
import { errorOf, recordingLogger, rejectionOf, tinyConfig, tmpDir, withFailingWrites, writeJson } from './helpers';

const cli = path.join(__dirname, '..', 'src', 'cli.js');
/** Where the test leaves the screenshot of the rendered report (examples/runs/, not tracked). */
const SCREENSHOT = path.join(__dirname, '..', '..', 'runs', 'report-screenshot.png');
/** What the test reads in the page (plain scripts: this package compiles without the DOM's types). */
const IN_PAGE = {
  /** Per chart: the SVG's size, its drawn lines (paths with real geometry) and its title. */
  charts: (ids: string[]) => `${JSON.stringify(ids)}.map((id) => {
    const svg = document.querySelector('#' + id + ' svg');
    const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
    const lines = [...document.querySelectorAll('#' + id + ' .mark-line path')].filter((p) => (p.getAttribute('d') || '').length > 20);
    const title = document.querySelector('#' + id + ' .role-title-text');
    return { id, width: box.width, height: box.height, lines: lines.length, title: title ? title.textContent : '' };
  })`,
  tables: `[...document.querySelectorAll('table')].map((t) => t.innerText)`,
};
const CHARTS = ['chart-loss-steps', 'chart-loss-epochs', 'chart-accuracy', 'chart-lr', 'chart-step-time', 'chart-peak-memory'];

describe('training report (tapfit train --report)', function () {
  this.timeout(120_000);
  let run: RunResult;
  let html = '';

  before(async () => {
    const config = configSchema.parse(tinyConfig({ training: { epochs: 3, batchSize: 20 } }));
    run = await runConfig(config, { report: tmpDir('tapfit-report-'), logger: recordingLogger() });
    html = fs.readFileSync(run.report!, 'utf8');
  });

  it('writes one self-contained HTML file (libraries inlined: it opens offline) and the data as JSON', () => {
    expect(path.basename(run.report!)).to.equal('report.html');
    expect(html).not.to.match(/<script[^>]+src=|<link[^>]+href=/);
    expect(html).to.contain('vega').and.contain('vegaLite');
    const data = JSON.parse(fs.readFileSync(path.join(path.dirname(run.report!), 'report.json'), 'utf8'));
    expect(data.steps).to.have.length(3 * 15); // 300 digits in batches of 20
    expect(data.epochs.map((e: { epoch: number }) => e.epoch)).to.deep.equal([0, 1, 2]);
    // The cosine schedule as the update used it: lr at the first and last step.
    expect(data.steps[0].lr).to.equal(0.05);
    expect(data.steps.at(-1).lr).to.be.closeTo(0.05 * 0.5 * (1 + Math.cos((Math.PI * 44) / 45)), 1e-9);
    for (const s of data.steps) expect(s.peakBytes).to.be.greaterThan(s.liveBytes);
    expect(data.describe.hooks.epochEnd).to.deep.equal(run.describe.hooks.epochEnd);
  });

  it('replaces report.html and report.json atomically: a failed write leaves the previous report whole', () => {
    const dir = path.dirname(run.report!);
    const before = ['report.html', 'report.json'].map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
    const data = JSON.parse(before[1]);
    expect(withFailingWrites(() => errorOf(() => writeReport(dir, { ...data, stepSummary: StepSummary.of(data.steps), title: 'a later run' }))).message).to.match(/ENOSPC/);
    expect(['report.html', 'report.json'].map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))).to.deep.equal(before);
    expect(fs.readdirSync(dir).sort(), 'no temporary file left').to.deep.equal(['report.html', 'report.json']);
  });

  it('renders in headless Chromium: every chart drawn as SVG marks, the tables filled, no console errors (screenshot saved)', async function () {
    const chromium = findChromium();
    if ('missing' in chromium) {
      console.log(`      skipped: ${chromium.missing}`);
      this.skip();
    }
    const browser = await launchChromium(chromium.path);
    try {
      const page = await browser.context.newPage();
      const problems: string[] = [];
      page.on('console', (m) => void (m.type() === 'error' && problems.push(`console.error: ${m.text()}`)));
      page.on('pageerror', (e) => void problems.push(`page error: ${e.message}`));
      page.on('request', (r) => void (r.url().startsWith('file:') || problems.push(`network request: ${r.url()}`)));
      await page.goto(pathToFileURL(run.report!).href);
      await page.waitForFunction('document.body.dataset.rendered', null, { timeout: 60_000 });
      expect(await page.evaluate('document.body.dataset.rendered')).to.equal('true');
      const charts = (await page.evaluate(IN_PAGE.charts(CHARTS))) as { id: string; width: number; height: number; lines: number; title: string }[];
      for (const c of charts) {
        expect(c.width, c.id).to.be.greaterThan(300);
        expect(c.height, c.id).to.be.greaterThan(150);
        expect(c.lines, `${c.id}: drawn lines`).to.be.at.least(1);
      }
      expect(charts.map((c) => c.title)).to.deep.equal(['Loss per step', 'Loss per epoch', 'Accuracy per epoch', 'Learning rate', 'Step time', 'Memory per step (live tensors)']);
      const tables = (await page.evaluate(IN_PAGE.tables)) as string[];
      expect(tables.some((t) => /fc1\s+store/.test(t) && /logits\s+store/.test(t)), 'memory plan table').to.equal(true);
      expect(tables.some((t) => /epochEnd\s+epoch-logger -> training-report/.test(t)), 'hook order table').to.equal(true);
      fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(problems).to.deep.equal([]);
    } finally {
      await browser.close();
    }
  });
});

describe('training report of a pipelined run (plugin-pipeline runs its own Backprop)', function () {
  this.timeout(120_000);

  it("shows the memory plan as describe() does: unused by the pipeline's Backprop (no per-segment policies), its extra memory, and who runs the backward", async () => {
    const dir = tmpDir('tapfit-report-pipeline-');
    const config = configSchema.parse(tinyConfig({ training: { epochs: 1, batchSize: 20 }, plugins: [['@tapfit/plugin-pipeline', { boundaries: ['logits'] }]] }));
    const log = recordingLogger();
    const run = await runConfig(config, { report: dir, logger: log });
    const { backprop, memoryPlan } = run.describe;
    // The oracle: what describe() printed for this trainer (the run logs it).
    const printed = log.infos.find((l) => l.startsWith('tapfit trainer on'))!;
    expect(printed).to.contain(`memory plan: not used by the Backprop of plugin 'pipeline'`);
    expect(backprop?.realisesMemoryPlan).to.equal(false);
    const html = fs.readFileSync(run.report!, 'utf8');
    const section = /<h2>Memory plan<\/h2>(.*?)<\/div>/s.exec(html)![1];
    expect(section).to.contain(`<p>Not used by the Backprop of plugin &#39;pipeline&#39; (${backprop!.runs}): its per-segment policies do not apply.</p>`);
    for (const s of memoryPlan!.segments) expect(section, `segment ${s.name}`).not.to.contain(`<td>${s.name}</td>`);
    expect(section).not.to.match(/<td>(store|recompute)<\/td>/);
    // Each extra memory line as describe() prints it ('  + source: size').
    const extras = printed.split('\n').filter((l) => l.startsWith('  + '));
    expect(extras).to.have.length(memoryPlan!.extraBytes.length).and.to.have.length.above(0);
    for (const line of extras) {
      const [, source, size] = /^ {2}\+ (.*): (\S+ \S+)$/.exec(line)!;
      expect(section, line).to.contain(`<tr><td>+ ${source}</td><td>${size}</td></tr>`);
    }
    const backpropLine = printed.split('\n').find((l) => l.startsWith('backprop: '))!.slice('backprop: '.length);
    expect(html).to.contain(`<td>backprop</td><td>${backpropLine.replace(/'/g, '&#39;')}</td>`);
  });
});

describe('training report of a --resume run', function () {
  this.timeout(120_000);

  it('numbers its steps from the step it resumed at (as a straight run numbers them) and says in the summary that it covers the resumed part', async () => {
    const dir = tmpDir('tapfit-report-resume-');
    const run = (training: { epochs: number }, options: { resume?: boolean; report?: string }) =>
      runConfig(configSchema.parse(tinyConfig({ training: { ...training, batchSize: 20 }, checkpoint: { dir: path.join(dir, 'ckpt'), every: 10 } })), { logger: recordingLogger(), ...options });
    await run({ epochs: 1 }, {}); // 15 steps: checkpoints step-10 and step-15
    fs.writeFileSync(path.join(dir, 'ckpt', 'LATEST'), 'step-10\n'); // resume inside the epoch, at its batch 10
    const resumed = await run({ epochs: 2 }, { resume: true, report: path.join(dir, 'report') });
    const data = JSON.parse(fs.readFileSync(path.join(dir, 'report', 'report.json'), 'utf8'));
    expect(data.steps.map((s: { step: number }) => s.step)).to.deep.equal(Array.from({ length: 20 }, (_, i) => 10 + i));
    expect([data.steps[0].epoch, data.steps[0].batch]).to.deep.equal([0, 10]);
    expect(data.resumedAt).to.equal(10);
    expect(fs.readFileSync(resumed.report!, 'utf8')).to.contain('<td>resumed</td><td>at step 10 (from a checkpoint): this report covers steps 10 to 29</td>');
  });

  it('says it resumed at the batch it continues from when some steps applied no update (a delay queue filling)', async () => {
    const dir = tmpDir('tapfit-report-resume-delay-');
    const run = (training: { epochs: number }, options: { resume?: boolean; report?: string }) =>
      runConfig(configSchema.parse(tinyConfig({ training: { ...training, batchSize: 20 }, plugins: [['@tapfit/plugin-brakes', { braking: false, delay: 3 }]], checkpoint: { dir: path.join(dir, 'ckpt'), every: 1000 } })), { logger: recordingLogger(), ...options });
    await run({ epochs: 1 }, {}); // 15 batches, 12 updates (the queue holds 3): checkpoint at the epoch's end
    const resumed = await run({ epochs: 2 }, { resume: true, report: path.join(dir, 'report') });
    const data = JSON.parse(fs.readFileSync(path.join(dir, 'report', 'report.json'), 'utf8'));
    expect(data.steps[0].step).to.equal(15);
    expect(data.resumedAt).to.equal(15);
    expect(fs.readFileSync(resumed.report!, 'utf8')).to.contain('<td>resumed</td><td>at step 15 (from a checkpoint): this report covers steps 15 to 29</td>');
  });
});

describe('training report of a long run (1,000,000 steps)', function () {
  this.timeout(300_000);
  const N = 1_000_000;
  const SPIKE = 777_777;
  let data: ReportData;
  let steps: StepRecord[];

  before(() => {
    // Step records of the report plugin's shape, as a run of a million steps hands them over; one loss spike.
    steps = Array.from({ length: N }, (_, i) => ({
      step: i, epoch: Math.floor(i / 2000), batch: i % 2000, loss: i === SPIKE ? 50 : 1 / (1 + i / 1000) + (i % 7) / 100, lr: 0.01 * Math.cos(i / N),
      ms: 3 + (i % 11) / 10, peakBytes: 2 ** 20 + (i % 1000), liveBytes: 2 ** 19, skipped: false,
    }));
    const epochs = Array.from({ length: N / 2000 }, (_, e) => ({ epoch: e, loss: 1 / (e + 1), acc: 0.9, val_loss: 1.1 / (e + 1), val_acc: 0.85 }));
    data = { title: 'long run', started: new Date(0).toISOString(), backend: 'cpu', describe: { backend: 'cpu', backendDetail: 'cpu', plugins: ['training-report'], hooks: { epochEnd: ['training-report'] } as TrainerDescription['hooks'], stepTransforms: ['sgd'], optimizer: 'chain', trainableParams: 195 }, steps, stepSummary: StepSummary.of(steps), epochs, seconds: 5000 };
  });

  it('the page stays under 3 MB: each chart at most 4,002 points a series (min/max per bucket: the spike kept at its height), and every chart renders', async () => {
    // The page is drawn from the summary alone (what the report plugin keeps while training), not the records.
    const page = renderReport({ ...data, steps: [] });
    expect(page.length, 'HTML characters').to.be.below(3 * 2 ** 20);
    const charts = JSON.parse(/<script type="application\/json" id="report-charts">(.*?)<\/script>/s.exec(page)![1]) as { id: string; spec: { title: unknown; data: { values: Record<string, number>[] } } }[];
    expect(charts.map((c) => c.id)).to.deep.equal(CHARTS);
    for (const c of charts) {
      const series = c.id === 'chart-peak-memory' || c.id === 'chart-loss-epochs' || c.id === 'chart-accuracy' ? 2 : 1;
      expect(c.spec.data.values.length, c.id).to.be.at.most(4002 * series);
    }
    const loss = charts[0].spec;
    // 2,000 buckets whose width doubles from 2 until they cover the run: 512 (2,000 x 256 < 1,000,000), so 1,954 buckets, the last one of 64 steps.
    expect(loss.title).to.deep.equal({ text: 'Loss per step', subtitle: '1,000,000 steps in 1,954 buckets of 512 (the last of 64), each drawn by its lowest and highest value' });
    expect(loss.data.values.find((r) => r.loss === 50)).to.deep.equal({ step: SPIKE, loss: 50 });
    expect([loss.data.values[0].step, loss.data.values.at(-1)!.step], 'the x axis spans the run').to.deep.equal([0, N - 1]);
    // Rendered as the page renders them (vega-lite compiled, drawn by vega), headless: every chart draws its lines.
    for (const c of charts) {
      const view = new vega.View(vega.parse(vegaLite.compile(c.spec as never).spec), { renderer: 'none' });
      const svg = await view.toSVG();
      view.finalize();
      expect((svg.match(/class="mark-line role-mark/g) ?? []).length, `${c.id}: line marks`).to.be.at.least(1);
      expect(svg.match(/<path[^>]* d="M[^"]{200,}"/g)?.length ?? 0, `${c.id}: drawn lines`).to.be.at.least(1);
    }
  });

  it('report.json holds every step, streamed to the file in chunks of about a MB (never one string of the whole run)', () => {
    const dir = tmpDir('tapfit-report-long-');
    const nodeFs: typeof fs = require('node:fs');
    const original = nodeFs.writeFileSync;
    let largest = 0;
    nodeFs.writeFileSync = ((target: fs.PathOrFileDescriptor, body: string | NodeJS.ArrayBufferView) => {
      largest = Math.max(largest, typeof body === 'string' ? body.length : body.byteLength);
      return original(target, body);
    }) as typeof fs.writeFileSync;
    try {
      writeReport(dir, data);
    } finally {
      nodeFs.writeFileSync = original;
    }
    try {
      expect(fs.statSync(path.join(dir, 'report.html')).size).to.be.below(3 * 2 ** 20);
      expect(fs.statSync(path.join(dir, 'report.json')).size).to.be.above(100 * 2 ** 20);
      expect(largest, 'the largest single write (the page)').to.be.below(3 * 2 ** 20);
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')) as ReportData;
      expect(json.steps).to.have.length(N);
      const written = json.steps as StepRecord[];
      expect([written[0], written[SPIKE], written[N - 1]]).to.deep.equal([steps[0], steps[SPIKE], steps[N - 1]]);
      const { stepSummary: _page, ...rest } = data;
      expect({ ...json, steps: [] }).to.deep.equal({ ...rest, steps: [] });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('training report of a --resume run that had nothing left to train', function () {
  this.timeout(120_000);

  it('tapfit train --resume --report on a checkpoint that finished its epochs writes a report without charts and exits 0', () => {
    const dir = tmpDir('tapfit-report-finished-');
    const file = writeJson(tinyConfig({ training: { epochs: 1, batchSize: 20 }, checkpoint: { dir: 'ckpt', every: 50 } }), dir);
    const first = spawnSync(process.execPath, [cli, 'train', file], { encoding: 'utf8' });
    expect(first.status, first.stderr).to.equal(0);
    const report = path.join(dir, 'report');
    const r = spawnSync(process.execPath, [cli, 'train', file, '--resume', '--report', report], { encoding: 'utf8' });
    expect(r.stderr).to.equal('');
    expect(r.status).to.equal(0);
    expect(r.stdout).to.match(/nothing left to train/).and.contain(`training report: ${path.join(report, 'report.html')}`);
    const html = fs.readFileSync(path.join(report, 'report.html'), 'utf8');
    expect(html).to.contain('<td>resumed</td><td>at step 15 (from a checkpoint): no step trained after it</td>').and.contain('<p>No charts: this run trained no step.</p>');
    expect(html).to.contain('<script type="application/json" id="report-charts">[]</script>');
    const data = JSON.parse(fs.readFileSync(path.join(report, 'report.json'), 'utf8'));
    expect([data.steps, data.epochs, data.resumedAt]).to.deep.equal([[], [], 15]);
  });
});

describe('training report: bad input fails before training', () => {
  const expectRefusedBeforeTraining = async (report: string, message: RegExp) => {
    const log = recordingLogger();
    const err = await rejectionOf(runConfig(configSchema.parse(tinyConfig()), { report, logger: log }));
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.match(message).and.match(/Choose a folder you can write to/);
    expect(log.infos, 'nothing ran: no backend picked, no epoch').to.deep.equal([]);
  };

  it('a report folder that is a file, or under a file', async () => {
    const file = path.join(tmpDir(), 'taken');
    fs.writeFileSync(file, 'x');
    await expectRefusedBeforeTraining(file, /--report '.*taken': is a file, not a folder/);
    await expectRefusedBeforeTraining(path.join(file, 'out'), /--report '.*taken\/out': cannot write there \(ENOTDIR\)/);
  });

  it('a folder nobody may write to: a read-only folder, or as root (whom file permissions do not stop) /sys', async function () {
    if (process.getuid?.() === 0) {
      // Root writes anywhere on a normal file system; sysfs refuses new entries even to root.
      if (!fs.existsSync('/sys/kernel')) {
        console.log('      skipped: running as root on a system without /sys, so no folder refuses writes');
        this.skip();
      }
      await expectRefusedBeforeTraining('/sys/tapfit-report', /cannot write there \(EPERM\)/);
      return;
    }
    const dir = tmpDir();
    fs.chmodSync(dir, 0o500);
    try {
      await expectRefusedBeforeTraining(path.join(dir, 'report'), /cannot write there \(EACCES\)/);
    } finally {
      fs.chmodSync(dir, 0o700);
    }
  });

  it('the report folder is created only when the report is written: a run refused before training leaves nothing', async () => {
    const dir = tmpDir();
    const config = configSchema.parse(tinyConfig({ plugins: ['tapfit-plugin-does-not-exist'] }));
    const err = await rejectionOf(runConfig(config, { report: path.join(dir, 'a', 'b'), logger: recordingLogger() }));
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.match(/plugin package 'tapfit-plugin-does-not-exist' is not installed/);
    expect(fs.readdirSync(dir), 'no report folder, no probe left').to.deep.equal([]);
  });

  it('the CLI prints the one-line error and trains nothing; log.report in the config is checked the same way', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'taken'), 'x');
    const file = writeJson(tinyConfig({ log: { progress: false, report: 'taken' } }), dir);
    const r = spawnSync(process.execPath, [cli, 'train', file], { encoding: 'utf8' });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/^error \[TAPFIT_E_CONFIG\]: config: option 'log.report' '.*taken': is a file, not a folder\./);
    expect(r.stdout).to.equal('');
    const flag = spawnSync(process.execPath, [cli, 'train', file, '--report', path.join(dir, 'taken', 'sub')], { encoding: 'utf8' });
    expect(flag.stderr).to.match(/^error \[TAPFIT_E_CONFIG\]: --report '.*sub': cannot write there \(ENOTDIR\)/);
  });
});

import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { readConfig, runConfig } from '../src';
import { recordingLogger, rejectionOf, tinyConfig, tmpDir, writeJson } from './helpers';

const tiny = (log: Record<string, unknown>, extra: Record<string, unknown> = {}) => tinyConfig({ training: { epochs: 1, batchSize: 50 }, log: { progress: false, ...log }, ...extra });

describe('tapfit train: output paths', () => {
  it('a metrics log or checkpoint folder that is the config file itself is refused; the config is left intact', async () => {
    for (const [key, body] of [
      ['log.metrics', tiny({ metrics: 'config.json' })],
      ['checkpoint.dir', tiny({}, { checkpoint: { dir: './config.json' } })],
    ] as const) {
      const dir = tmpDir();
      const file = writeJson(body, dir);
      const text = fs.readFileSync(file, 'utf8');
      const err = await rejectionOf(runConfig(readConfig(file), { configDir: dir, configFile: file, logger: recordingLogger(), quiet: true }));
      expect(err.code).to.equal('TAPFIT_E_CONFIG');
      expect(err.message).to.contain(`option '${key}' points at the config file itself`).and.contain('Choose another path');
      expect(fs.readFileSync(file, 'utf8')).to.equal(text);
    }
  });

  it('an existing metrics log is replaced by a fresh run, with a warning naming it', async () => {
    const dir = tmpDir();
    const metrics = path.join(dir, 'old.jsonl');
    fs.writeFileSync(metrics, '{"epoch":1,"note":"from an earlier run"}\n');
    const file = writeJson(tiny({ metrics: 'old.jsonl' }), dir);
    const log = recordingLogger();
    await runConfig(readConfig(file), { configDir: dir, configFile: file, logger: log, quiet: true });
    expect(log.warnings).to.deep.equal([`metrics log '${metrics}' exists; this run replaces it (--resume continues it instead).`]);
    const lines = fs.readFileSync(metrics, 'utf8').trim().split('\n');
    expect(lines).to.have.length(1);
    expect(JSON.parse(lines[0])).to.include({ epoch: 1, step: 6 });
  });

  it('a fresh run into a folder that holds checkpoints warns; a new metrics log and an empty folder do not', async () => {
    const dir = tmpDir();
    const file = writeJson(tiny({ metrics: 'runs/m.jsonl' }, { checkpoint: { dir: 'ckpt' } }), dir);
    const first = recordingLogger();
    await runConfig(readConfig(file), { configDir: dir, configFile: file, logger: first, quiet: true });
    expect(first.warnings).to.deep.equal([]);
    fs.rmSync(path.join(dir, 'runs'), { recursive: true });
    const second = recordingLogger();
    await runConfig(readConfig(file), { configDir: dir, configFile: file, logger: second, quiet: true });
    expect(second.warnings).to.deep.equal([`checkpoint folder '${path.join(dir, 'ckpt')}' holds checkpoints already; this fresh run writes over them (--resume continues from them instead).`]);
  });
});

describe('tapfit train: outputs that overlap are refused before anything is created', () => {
  /** Runs `body` from a fresh folder holding only config.json; expects a refusal that named both options and left the folder as it was. */
  const expectOverlapRefused = async (body: Record<string, unknown>, named: [string, string], how: 'the same path' | 'is inside', report?: string) => {
    const dir = tmpDir();
    const file = writeJson(body, dir);
    const log = recordingLogger();
    const err = await rejectionOf(runConfig(readConfig(file), { configDir: dir, configFile: file, logger: log, quiet: true, report: report && path.join(dir, report) }));
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.match(/^output paths overlap: /).and.contain(named[0]).and.contain(named[1]).and.contain(how);
    expect(err.message).to.contain('Each output needs a path of its own, none inside another; put them side by side, e.g.');
    expect(fs.readdirSync(dir), 'nothing created').to.deep.equal(['config.json']);
    expect(log.infos, 'nothing ran: no backend picked, no epoch').to.deep.equal([]);
    return err.message;
  };

  it('log.metrics equal to checkpoint.dir (the epoch would be trained, then lost)', async () => {
    const message = await expectOverlapRefused(tiny({ metrics: 'out1/run' }, { checkpoint: { dir: 'out1/run' } }), ["option 'log.metrics'", "option 'checkpoint.dir'"], 'the same path');
    expect(message).to.contain("e.g. 'log.metrics': 'runs/metrics.jsonl' and 'checkpoint.dir': 'runs/checkpoints'.");
  });

  it('log.report or --report equal to log.metrics or checkpoint.dir', async () => {
    await expectOverlapRefused(tiny({ metrics: 'out2/metrics.jsonl', report: 'out2/metrics.jsonl' }), ["option 'log.metrics'", "option 'log.report'"], 'the same path');
    await expectOverlapRefused(tiny({}, { checkpoint: { dir: 'out/ck' } }), ["option 'checkpoint.dir'", '--report'], 'the same path', 'out/ck');
    const message = await expectOverlapRefused(tiny({ metrics: 'out/m.jsonl' }), ["option 'log.metrics'", '--report'], 'the same path', 'out/./m.jsonl');
    expect(message).to.contain("e.g. 'log.metrics': 'runs/metrics.jsonl' and --report runs/report.");
  });

  it('one output inside another: in the checkpoint folder, in the report folder, under the metrics file', async () => {
    await expectOverlapRefused(tiny({ metrics: 'ck/m.jsonl' }, { checkpoint: { dir: 'ck' } }), ["option 'log.metrics' ('", "') is inside option 'checkpoint.dir'"], 'is inside');
    await expectOverlapRefused(tiny({ report: 'out' }, { checkpoint: { dir: 'out/a/ck' } }), ["option 'checkpoint.dir' ('", "') is inside option 'log.report'"], 'is inside');
    await expectOverlapRefused(tiny({ metrics: 'm.jsonl' }), ["--report ('", "') is inside option 'log.metrics'"], 'is inside', 'm.jsonl/report');
  });

  it('paths that only share a prefix or a parent folder are not overlapping', async () => {
    const dir = tmpDir();
    const file = writeJson(tiny({ metrics: 'out/run.jsonl', report: 'out/run-report' }, { checkpoint: { dir: 'out/run' } }), dir);
    await runConfig(readConfig(file), { configDir: dir, configFile: file, logger: recordingLogger(), quiet: true });
    expect(fs.readdirSync(path.join(dir, 'out')).sort()).to.deep.equal(['run', 'run-report', 'run.jsonl']);
  });
});

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

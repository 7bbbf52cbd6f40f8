import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import type { PluginApi, TapfitPlugin } from '@tapfit/core';
import { writeFileAtomic } from '../src/atomic-write';
import { jsonlMetrics } from '../src/plugins/jsonl-metrics';
import { errorOf, recordingLogger, tmpDir, withFailingWrites } from './helpers';

/** The plugin's fitStart tap, called as the trainer would (no training needed). */
function fitStartOf(plugin: TapfitPlugin, logger = recordingLogger()): (info: { initialEpoch: number }) => void {
  const taps: Record<string, (info: { initialEpoch: number }) => void> = {};
  const hooks = new Proxy({}, { get: (_, name: string) => ({ tap: (_options: unknown, fn: (info: { initialEpoch: number }) => void) => void (taps[name] = fn) }) });
  void plugin.apply({ hooks, trainer: { step: 0 }, logger } as unknown as PluginApi);
  return taps.fitStart;
}

describe('atomic writes (metrics log, report)', () => {
  it('writeFileAtomic replaces the file and leaves no temporary file', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'out.txt');
    fs.writeFileSync(file, 'old');
    writeFileAtomic(file, 'new body');
    expect(fs.readFileSync(file, 'utf8')).to.equal('new body');
    expect(fs.readdirSync(dir)).to.deep.equal(['out.txt']);
  });

  it('a write that fails half-way leaves the previous file whole and no temporary file', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'out.txt');
    fs.writeFileSync(file, 'the previous contents');
    expect(withFailingWrites(() => errorOf(() => writeFileAtomic(file, 'x'.repeat(1000)))).message).to.match(/ENOSPC/);
    expect(fs.readFileSync(file, 'utf8')).to.equal('the previous contents');
    expect(fs.readdirSync(dir)).to.deep.equal(['out.txt']);
  });

  it('--resume rewrites the metrics log atomically: a failed rewrite keeps the whole previous log', () => {
    const file = path.join(tmpDir(), 'metrics.jsonl');
    const log = [1, 2, 3].map((epoch) => JSON.stringify({ epoch, step: 15 * epoch, seconds: epoch, loss: 1 / epoch }) + '\n').join('');
    fs.writeFileSync(file, log);
    // Resuming at epoch 2 keeps line 1 and drops lines 2 and 3 (written after the checkpoint).
    const fitStart = fitStartOf(jsonlMetrics(file, { resume: true }));
    expect(withFailingWrites(() => errorOf(() => fitStart({ initialEpoch: 1 }))).message).to.match(/ENOSPC/);
    expect(fs.readFileSync(file, 'utf8')).to.equal(log);
    fitStart({ initialEpoch: 1 });
    expect(fs.readFileSync(file, 'utf8')).to.equal(log.split('\n')[0] + '\n');
    expect(fs.readdirSync(path.dirname(file))).to.deep.equal(['metrics.jsonl']);
  });

  it('--resume drops a last line cut short (an interrupted append), with a warning, and keeps the complete lines', () => {
    const file = path.join(tmpDir(), 'metrics.jsonl');
    const lines = [1, 2, 3].map((epoch) => JSON.stringify({ epoch, step: 15 * epoch, seconds: epoch, loss: 1 / epoch }) + '\n');
    fs.writeFileSync(file, lines[0] + lines[1] + lines[2].slice(0, 20)); // line 3 cut mid-write
    const log = recordingLogger();
    fitStartOf(jsonlMetrics(file, { resume: true }), log)({ initialEpoch: 2 });
    expect(fs.readFileSync(file, 'utf8')).to.equal(lines[0] + lines[1]);
    expect(log.warnings.join('\n')).to.contain(`the metrics log '${file}' ends in a line cut short (line 3`);
    // A line that is not JSON and not the last one is no interrupted append: refused, the log left as it was.
    fs.writeFileSync(file, lines[0] + '{"epoch": 2, "lo\n' + lines[2]);
    expect(errorOf(() => fitStartOf(jsonlMetrics(file, { resume: true }))({ initialEpoch: 2 })).message).to.contain('line 2 is not JSON');
    expect(fs.readFileSync(file, 'utf8')).to.equal(lines[0] + '{"epoch": 2, "lo\n' + lines[2]);
  });
});

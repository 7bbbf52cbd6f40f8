import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { expect } from 'chai';
import { tinyConfig, writeJson } from './helpers';

const cli = path.join(__dirname, '..', 'src', 'cli.js');

describe('tapfit CLI: a reader that goes away', () => {
  it('`tapfit train ... | head` whose reader closes the pipe exits 0 without a stack trace (no unhandled EPIPE)', async () => {
    const file = writeJson(tinyConfig({ training: { epochs: 3, batchSize: 20 } }));
    const child = spawn(process.execPath, [cli, 'train', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    // As `head -1` does: read the first output, then close the pipe while the run still prints.
    child.stdout.once('data', () => child.stdout.destroy());
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
    expect(stderr).not.to.match(/EPIPE|Error|at /);
    expect([code, signal]).to.deep.equal([0, null]);
  });
});

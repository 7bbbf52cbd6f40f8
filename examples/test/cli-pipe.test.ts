import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { tinyConfig, writeJson } from './helpers';

const cli = path.join(__dirname, '..', 'src', 'cli.js');

describe('tapfit CLI: a reader that goes away', () => {
  it('`tapfit train ... | head` whose reader closes the pipe stops as SIGPIPE would: after the batch, with a checkpoint, status 141, no stack trace (no unhandled EPIPE)', async () => {
    const file = writeJson(tinyConfig({ training: { epochs: 3, batchSize: 20 }, checkpoint: { dir: 'ckpt', every: 1000 } }));
    const child = spawn(process.execPath, [cli, 'train', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    // As `head -1` does: read the first output, then close the pipe while the run still prints.
    child.stdout.once('data', () => child.stdout.destroy());
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
    expect(stderr).not.to.match(/EPIPE|Error|\n\s+at /);
    expect(stderr).to.contain("the output's reader went away (SIGPIPE): stopping after the current batch and saving a checkpoint.");
    expect([code, signal], 'the status a shell shows for SIGPIPE, which pipefail sees').to.deep.equal([141, null]);
    expect(fs.readFileSync(path.join(path.dirname(file), 'ckpt', 'LATEST'), 'utf8'), 'a checkpoint where it stopped').to.match(/^step-\d+/);
  });
});

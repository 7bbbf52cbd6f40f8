import { execFile, execFileSync } from 'node:child_process';
import * as path from 'node:path';

/** PyTorch steps per second by model and thread count, from bench/python/torch_peer.py. */
export interface PeerRound {
  model: string;
  threads: number;
  round: number;
  stepsPerSecond: number;
}

export interface Peer {
  python: string;
  torch: string;
  blas: string[];
}

/**
 * A Python that imports torch: $TAPFIT_PYTHON, python3, then Debian's /usr/bin/python3
 * (apt's python3-torch lands there even when another python3 comes first on the PATH).
 * Returns the reason there is none instead.
 */
export function findPeer(): Peer | { skipped: string } {
  const candidates = [process.env.TAPFIT_PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => !!c);
  const tried: string[] = [];
  for (const python of [...new Set(candidates)]) {
    try {
      const out = execFileSync(python, [script(), '0', '1', '1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
      const head = JSON.parse(out.trim().split('\n')[0]) as { torch: string; blas: string[] };
      return { python, torch: head.torch, blas: head.blas };
    } catch (err) {
      tried.push(`${python}: ${((err as { stderr?: string }).stderr || (err as Error).message).trim().split('\n').pop()}`);
    }
  }
  return { skipped: `no Python with torch (${tried.join('; ')}); on Debian: apt-get install -y python3-torch libopenblas0-openmp` };
}

/** One round of the peer on every model at each thread count. */
export function runPeerRound(peer: Peer, round: number, threads: number[], scale: number): Promise<PeerRound[]> {
  return new Promise((resolve, reject) => {
    execFile(peer.python, [script(), '1', threads.join(','), String(scale)], { timeout: 600_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`torch_peer.py failed: ${err.message}\n${stderr}`));
      const lines = stdout.trim().split('\n').slice(1).map((l) => JSON.parse(l) as PeerRound);
      resolve(lines.map((l) => ({ ...l, round })));
    });
  });
}

function script(): string {
  return path.resolve(__dirname, '..', '..', '..', 'python', 'torch_peer.py');
}

#!/usr/bin/env node
/**
 * `npm run bench -- <name> [args]`: runs bench/src/benches/<name>.js, which writes
 * bench/results/<name>.json. `npm run bench` alone lists the benchmarks.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

async function main(): Promise<void> {
  const dir = path.join(__dirname, 'benches');
  const names = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)) : [];
  const [name, ...args] = process.argv.slice(2);
  if (!name || !names.includes(name)) {
    console.error(`${name ? `unknown benchmark '${name}'. ` : ''}usage: npm run bench -- <name>; available: ${names.sort().join(', ')}`);
    process.exit(name ? 2 : 0);
  }
  const mod = require(path.join(dir, `${name}.js`)) as { run(args: string[]): Promise<void> };
  await mod.run(args);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from './doc-snippets';

export interface PublishablePackage {
  name: string;
  dir: string;
  version: string;
  manifest: Record<string, unknown>;
}

/** The packages that are published: every non-private package under packages/. */
export function publishablePackages(): PublishablePackage[] {
  const root = path.join(repoRoot, 'packages');
  return fs
    .readdirSync(root)
    .map((d) => path.join(root, d))
    .filter((dir) => fs.existsSync(path.join(dir, 'package.json')))
    .map((dir) => {
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
      return { name: manifest.name as string, version: manifest.version as string, dir, manifest };
    })
    .filter((p) => !p.manifest.private)
    .sort((a, b) => a.name.localeCompare(b.name));
}

import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import { writeFileAtomic } from '../atomic-write';
import { renderReport, type ReportData } from './report-html';
import { reportJsonChunks } from './report-json';

/**
 * Makes sure a report can be written to `dir` before anything trains, without creating
 * it (a run refused later, e.g. for a missing plugin, must leave nothing behind; the
 * folder is made when the report is written). A probe is written and removed in the
 * nearest folder that exists: a file in the way, permissions and read-only mounts all
 * show up here, not after the run.
 */
export function checkReportDir(dir: string, option = '--report'): void {
  const fail = (why: string): never => {
    throw new TapfitError(ErrorCodes.CONFIG, `${option} '${dir}': ${why}. Choose a folder you can write to, e.g. '--report runs/report'.`);
  };
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) fail('is a file, not a folder');
  const existing = nearestExisting(dir);
  const probe = path.join(existing, `.tapfit-write-check-${process.pid}`);
  try {
    if (!fs.statSync(existing).isDirectory()) throw Object.assign(new Error(`'${existing}' is a file`), { code: 'ENOTDIR' });
    // What the run will do there: write files into the report folder, or create it.
    if (existing === path.resolve(dir)) {
      fs.writeFileSync(probe, '');
      fs.rmSync(probe);
    } else {
      fs.mkdirSync(probe);
      fs.rmdirSync(probe);
    }
  } catch (err) {
    fail(`cannot write there (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** `dir` itself when it exists, else its nearest ancestor that does. */
function nearestExisting(dir: string): string {
  let at = path.resolve(dir);
  while (!fs.existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  return at;
}

/**
 * Writes `report.html` (self-contained: opens offline; its charts bounded, a few MB however
 * long the run) and `report.json` (the data in full, every step, streamed: see
 * reportJsonChunks) to `dir`, creating it; returns the HTML's path. Each file is replaced
 * atomically, so a failed write leaves the previous run's file whole. The page is rendered
 * before either is written.
 */
export function writeReport(dir: string, data: ReportData): string {
  const html = path.join(dir, 'report.html');
  const page = renderReport(data);
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(path.join(dir, 'report.json'), reportJsonChunks(data));
  writeFileAtomic(html, page);
  return html;
}

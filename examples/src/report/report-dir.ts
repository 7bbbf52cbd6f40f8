import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import { renderReport, type ReportData } from './report-html';

/**
 * Makes sure a report can be written to `dir` before anything trains: the folder is
 * created if missing, and a probe file is written and removed (permissions, read-only
 * mounts and a file in the way all show up here, not after the run).
 */
export function checkReportDir(dir: string, option = '--report'): void {
  const fail = (why: string): never => {
    throw new TapfitError(ErrorCodes.CONFIG, `${option} '${dir}': ${why}. Choose a folder you can write to, e.g. '--report runs/report'.`);
  };
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) fail('is a file, not a folder');
  const probe = path.join(dir, `.tapfit-write-check-${process.pid}`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (err) {
    fail(`cannot write there (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Writes `report.html` (self-contained: opens offline) and `report.json` (the data) to `dir`; returns the HTML's path. */
export function writeReport(dir: string, data: ReportData): string {
  fs.mkdirSync(dir, { recursive: true });
  const html = path.join(dir, 'report.html');
  fs.writeFileSync(html, renderReport(data));
  fs.writeFileSync(path.join(dir, 'report.json'), JSON.stringify(data, null, 1));
  return html;
}

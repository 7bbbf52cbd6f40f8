import type { ReportData } from './report-html';

/** About this many characters per chunk handed to the file: few writes, no big string. */
const CHUNK_CHARS = 1 << 20;

/**
 * report.json as chunks of text, streamed to the file: the run's data in full, every step
 * record included, one per line, taken from `data.steps` as it is read (the report plugin
 * reads them back from its file: never all in memory). Never one string: at 150 to 200
 * characters a step record, a run of about 3M steps is past V8's longest string
 * (JSON.stringify of it throws RangeError).
 * Parsed, it is `data` less `stepSummary` (the page's bounded summary), with `steps` the
 * array of records (a JSON object; the top-level fields one per line).
 */
export function* reportJsonChunks(data: ReportData): Generator<string> {
  const fields = Object.entries(data).filter(([k, v]) => v !== undefined && k !== 'stepSummary');
  yield '{\n';
  for (const [n, [key, value]] of fields.entries()) {
    const comma = n < fields.length - 1 ? ',' : '';
    if (key !== 'steps') {
      yield ` ${JSON.stringify(key)}: ${JSON.stringify(value, null, 1).replace(/\n/g, '\n ')}${comma}\n`;
      continue;
    }
    yield ' "steps": [';
    // A comma before each record but the first: how many there are is known only at the end.
    let chunk = '';
    let any = false;
    for (const step of value as ReportData['steps']) {
      chunk += `${any ? ',' : ''}\n  ${JSON.stringify(step)}`;
      any = true;
      if (chunk.length >= CHUNK_CHARS) {
        yield chunk;
        chunk = '';
      }
    }
    yield `${chunk}${any ? '\n ' : ''}]${comma}\n`;
  }
  yield '}\n';
}

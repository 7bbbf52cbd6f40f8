import type { ReportData } from './report-html';

/** About this many characters per chunk handed to the file: few writes, no big string. */
const CHUNK_CHARS = 1 << 20;

/**
 * report.json as chunks of text, streamed to the file: the run's data in full, every step
 * record included, one per line. Never one string: at 150 to 200 characters a step
 * record, a run of about 3M steps is past V8's longest string (JSON.stringify of it
 * throws RangeError).
 * Parsed, it is `data` (a JSON object; the top-level fields one per line).
 */
export function* reportJsonChunks(data: ReportData): Generator<string> {
  const fields = Object.entries(data).filter(([, v]) => v !== undefined);
  yield '{\n';
  for (const [n, [key, value]] of fields.entries()) {
    const comma = n < fields.length - 1 ? ',' : '';
    if (key !== 'steps') {
      yield ` ${JSON.stringify(key)}: ${JSON.stringify(value, null, 1).replace(/\n/g, '\n ')}${comma}\n`;
      continue;
    }
    const steps = value as ReportData['steps'];
    yield ` "steps": [${steps.length ? '\n' : ''}`;
    let chunk = '';
    for (let i = 0; i < steps.length; i++) {
      chunk += `  ${JSON.stringify(steps[i])}${i < steps.length - 1 ? ',' : ''}\n`;
      if (chunk.length >= CHUNK_CHARS) {
        yield chunk;
        chunk = '';
      }
    }
    yield `${chunk}${steps.length ? ' ' : ''}]${comma}\n`;
  }
  yield '}\n';
}

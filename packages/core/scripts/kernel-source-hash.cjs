// The hash of the kernel sources that kernels-binary.ts was built from (checked by a test).
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

function kernelSourceHash(root) {
  const dir = path.join(root, 'kernels');
  const hash = crypto.createHash('sha256');
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.ts')).sort()) {
    hash.update(f);
    hash.update(fs.readFileSync(path.join(dir, f), 'utf8').replace(/\r\n/g, '\n'));
  }
  return hash.digest('hex').slice(0, 16);
}

module.exports = { kernelSourceHash };

/**
 * Marks the upload of one training batch cut on the host (an in-memory source's rows, a
 * datasetData batch of plain values), so that a refused allocation there is advised a
 * smaller batch: the source already keeps the rest of the data off the backend
 * (memory-advice.ts). A refusal is thrown inside the upload, so a depth counter is enough.
 */
let depth = 0;

export function asBatchUpload<T>(upload: () => T): T {
  depth++;
  try {
    return upload();
  } finally {
    depth--;
  }
}

/** Whether the allocation being made is one batch's upload. */
export function uploadingBatch(): boolean {
  return depth > 0;
}

/**
 * Whether any connection, in any process, may have committed to a SQLite store
 * since the last look, answered without a system call: by reading the WAL-index
 * header in the store's shared-memory file (`<db>-shm`), where SQLite publishes
 * every commit (https://www.sqlite.org/walformat.html, "The WAL-Index Header").
 *
 * The header is 48 bytes, written twice (the second copy first); each commit
 * changes its change counter, its last frame and its checksum, and a restarted
 * WAL gets new salts. So a header that reads the same as last time, with both
 * copies equal, means nothing was committed since. Anything else (a copy being
 * written, an unknown layout, a file that cannot be mapped) answers "maybe", and
 * the caller asks SQLite itself (`PRAGMA data_version`): a wrong answer here can
 * only cost a statement, never hide a commit.
 *
 * SQLite shrinks the file only when the first connection opens it, never while
 * another holds it open, and the store's own connection holds it for the
 * store's life: a mapping read after `close()` is never made.
 */
const HEADER_WORDS = 12; // 48 bytes
const WAL_INDEX_VERSION = 3007000;
const IS_INIT_BYTE = 12;

export class WalHeaderWatch {
  /** The two header copies; undefined until first asked, null when the file cannot be used. */
  private words: Int32Array | null | undefined;
  private bytes: Uint8Array | undefined;
  private readonly last = new Int32Array(HEADER_WORDS);
  private known = false;

  constructor(private readonly shmPath: string) {}

  /** False only when no connection can have committed since the previous call. */
  maybeChanged(): boolean {
    if (this.words === undefined) this.map();
    const w = this.words;
    if (!w || w[0] !== WAL_INDEX_VERSION || this.bytes![IS_INIT_BYTE] !== 1) {
      this.known = false;
      return true;
    }
    let same = this.known;
    for (let i = 0; i < HEADER_WORDS; i++) {
      const v = w[i]!;
      // A second copy that differs: a commit is being published right now.
      if (w[HEADER_WORDS + i] !== v) {
        this.known = false;
        return true;
      }
      if (this.last[i] !== v) {
        same = false;
        this.last[i] = v;
      }
    }
    this.known = true;
    return !same;
  }

  /** The store is closing: the mapping is never read again. */
  close(): void {
    this.words = null;
    this.bytes = undefined;
  }

  private map(): void {
    try {
      const m = Bun.mmap(this.shmPath, { shared: true, size: HEADER_WORDS * 8 });
      // The header is native-endian u32s at the start of a page-aligned mapping.
      this.words = m.byteLength >= HEADER_WORDS * 8 && m.byteOffset % 4 === 0 ? new Int32Array(m.buffer, m.byteOffset, HEADER_WORDS * 2) : null;
      this.bytes = this.words ? m : undefined;
    } catch {
      this.words = null;
    }
  }
}

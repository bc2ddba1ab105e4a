// Which byte ranges of a file are on disk: saved beside the partial file while it downloads, so a
// worker that was SIGKILLed fetches only what is missing, and with If-Range, so a file that changed
// on the server in between is started over instead of spliced.

const MiB = 1024 * 1024;
/** Pieces are whole MiB (aligned writes), at least this big (a request per piece costs a round trip)... */
const MIN_PIECE_BYTES = MiB;
/** ...and at most this big, so the hash, which follows the pieces done in order, stays close behind. */
const MAX_PIECE_BYTES = 128 * MiB;
/** Pieces per connection: when one connection is slow, the others take the pieces it has not started. */
const PIECES_PER_CONNECTION = 4;

export interface Piece {
  start: number;
  /** Exclusive; null: up to the end of a file whose size is not known (one sequential stream). */
  end: number | null;
  /** Bytes from `start` that are on disk. */
  done: number;
}

export interface DownloadState {
  version: 1;
  /** The size the pull planned with; a state for another size is stale. */
  size: number | null;
  /** The ETag or Last-Modified that the bytes on disk came with, sent as If-Range on every resume. */
  validator: string | null;
  /** In file order, covering it without gaps. One piece: a sequential download (no Range up front). */
  pieces: Piece[];
}

export function sequentialState(size: number | null, done = 0): DownloadState {
  return { version: 1, size, validator: null, pieces: [{ start: 0, end: size, done }] };
}

/** Parallel ranges for a file of `size` over `connections` connections. */
export function parallelState(size: number, connections: number): DownloadState {
  const even = Math.ceil(size / (connections * PIECES_PER_CONNECTION) / MiB) * MiB;
  const pieceBytes = Math.min(Math.max(even, MIN_PIECE_BYTES), MAX_PIECE_BYTES);
  const pieces: Piece[] = [];
  for (let start = 0; start < size; start += pieceBytes) {
    pieces.push({ start, end: Math.min(start + pieceBytes, size), done: 0 });
  }
  return { version: 1, size, validator: null, pieces };
}

export function pieceLength(piece: Piece): number {
  return piece.end === null ? Infinity : piece.end - piece.start;
}

export function isDone(piece: Piece): boolean {
  return piece.done >= pieceLength(piece);
}

export function bytesDone(state: DownloadState): number {
  return state.pieces.reduce((sum, piece) => sum + piece.done, 0);
}

/** Bytes [0, frontier) are all on disk. */
export function contiguousDone(state: DownloadState): number {
  let frontier = 0;
  for (const piece of state.pieces) {
    frontier = piece.start + piece.done;
    if (!isDone(piece)) break;
  }
  return frontier;
}

/** A saved state as read back from disk, if it is one for a file of `size`; else null (start over). */
export function parseState(raw: unknown, size: number | null): DownloadState | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const state = raw as DownloadState;
  if (state.version !== 1 || state.size !== size || !Array.isArray(state.pieces) || state.pieces.length === 0) {
    return null;
  }
  let at = 0;
  for (const piece of state.pieces) {
    const end = piece.end ?? Infinity;
    const valid =
      piece.start === at && Number.isSafeInteger(piece.done) && piece.done >= 0 && piece.done <= end - piece.start;
    if (!valid) return null;
    at = end;
  }
  if (at !== (size ?? Infinity)) return null;
  if (state.validator !== null && typeof state.validator !== 'string') return null;
  return state;
}

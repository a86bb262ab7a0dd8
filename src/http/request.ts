import { BrokerError } from '../errors.ts';

/** Forms here carry a passcode or an authid; nothing legitimate comes near this. */
export const MAX_FORM_BYTES = 16 * 1024;

/** The form of a request without one (GET): shared, read only, so that a GET allocates nothing for it. */
export const NO_FORM: URLSearchParams = new URLSearchParams();

/**
 * Reads a urlencoded form with a hard size limit, counting bytes as they arrive
 * so that a body without Content-Length cannot exhaust memory. Other content
 * types yield an empty form rather than an error: /refresh also takes headers.
 */
export async function readForm(req: Request): Promise<URLSearchParams> {
  if (req.method !== 'POST') return NO_FORM;
  const declared = Number(req.headers.get('content-length') ?? '0');
  if (declared > MAX_FORM_BYTES) throw tooLarge();
  const type = (req.headers.get('content-type') ?? '').toLowerCase();
  if (!req.body) return new URLSearchParams();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  for (;;) {
    let chunk: Awaited<ReturnType<typeof reader.read>>;
    try {
      chunk = await reader.read();
    } catch (e) {
      // Broken chunked framing, a client gone mid-body, or Bun's own size limit: the request's fault, not ours.
      if (/maxRequestBodySize|too large/i.test(String((e as Error)?.message))) throw tooLarge();
      throw new BrokerError('invalid_request', 'The request body could not be read.');
    }
    const { done, value } = chunk;
    if (done) break;
    size += value.byteLength;
    if (size > MAX_FORM_BYTES) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  if (!type.startsWith('application/x-www-form-urlencoded')) return new URLSearchParams();
  // Invalid UTF-8 becomes U+FFFD instead of throwing: the fields are then simply wrong.
  const text = new TextDecoder('utf-8', { fatal: false }).decode(Buffer.concat(chunks));
  return new URLSearchParams(text);
}

function tooLarge(): BrokerError {
  return new BrokerError('request_too_large', `The request body is larger than ${MAX_FORM_BYTES / 1024} KiB.`);
}

/** The first value of a field, bounded: no field of ours is longer than a few hundred characters. */
export function field(params: URLSearchParams, name: string, max = 1024): string | null {
  const v = params.get(name);
  if (v === null) return null;
  if (v.length > max) throw new BrokerError('invalid_request', `The field "${name}" is too long.`);
  return v;
}

/**
 * The authid of a request, in the documented order: the X-AuthID header, else the
 * `authid` query or form field, else an `Authorization: Bearer` header.
 */
export function authIdFrom(req: Request, url: () => URL, form: URLSearchParams): string | null {
  const header = req.headers.get('x-authid');
  if (header) return header;
  // The URL is parsed only here, when there is no header (the usual request has one).
  const q = url().searchParams.get('authid') || form.get('authid');
  if (q) return q;
  const auth = req.headers.get('authorization');
  if (auth && /^bearer\s+/i.test(auth)) return auth.replace(/^bearer\s+/i, '');
  return null;
}

export function missingAuthId(hint: string): BrokerError {
  return new BrokerError('authid_missing', 'No AuthID in the request.', { hint });
}

export function wantsHtml(req: Request): boolean {
  return (req.headers.get('accept') ?? '').includes('text/html');
}

export function wantsPlainText(req: Request): boolean {
  const accept = (req.headers.get('accept') ?? '').toLowerCase();
  return accept.includes('text/plain') && !accept.includes('application/json');
}

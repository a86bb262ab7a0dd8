/** Requests as a browser sends them to the broker's app, and what it keeps of the answers. */
import { PASSCODE } from './passcode.ts';

/** A form post (`application/x-www-form-urlencoded`), with extra headers (Origin, Sec-Fetch-Site, Cookie …). */
export const form = (fields: Record<string, string>, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
  body: new URLSearchParams(fields),
});

/** `name=value` of every Set-Cookie in a response. */
export function cookiesOf(res: Response): string[] {
  return res.headers.getSetCookie().map((c) => c.split(';')[0]!.trim());
}

/** The start page's form: POST /login with a service and a passcode (the right one unless told). */
export const loginForm = (opts: { passcode?: string; id?: string; token?: string; headers?: Record<string, string> } = {}): RequestInit =>
  form({ id: opts.id ?? 'onedrivev2', passcode: opts.passcode ?? PASSCODE, ...(opts.token ? { token: opts.token } : {}) }, opts.headers);

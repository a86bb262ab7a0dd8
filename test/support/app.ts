import type { ClientInfo } from '../../src/http/app.ts';

/** The app as tests hold it: always a promise (the app answers a cache hit without one). */
export function awaited(app: (req: Request, client?: ClientInfo) => Response | Promise<Response>): (req: Request, client?: ClientInfo) => Promise<Response> {
  return async (req, client) => app(req, client);
}

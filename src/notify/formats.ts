/**
 * How a notification is written for a target. Detection from the URL is kept
 * simple and documented (README, "Notifications"):
 * - host `ntfy.sh` → ntfy (a self-hosted ntfy needs `--notify-format ntfy`);
 * - host `hooks.slack.com`, or `discord.com`/`discordapp.com` with a path under
 *   `/api/webhooks/` → text;
 * - a fragment naming a format (`#ntfy`, `#text`, `#json`; fetch never sends it) wins;
 * - anything else → `--notify-format`, else json.
 */
import type { Notification, NotifyEventName, Severity } from './events.ts';

export const FORMATS = ['json', 'ntfy', 'text'] as const;
export type Format = (typeof FORMATS)[number];

export function detectFormat(url: string, fallback: Format = 'json'): Format {
  const u = new URL(url);
  const host = u.hostname.toLowerCase();
  const named = u.hash.slice(1);
  if ((FORMATS as readonly string[]).includes(named)) return named as Format;
  if (host === 'ntfy.sh') return 'ntfy';
  if (host === 'hooks.slack.com') return 'text';
  if ((host === 'discord.com' || host === 'discordapp.com') && u.pathname.startsWith('/api/webhooks/')) return 'text';
  return fallback;
}

const TITLES: Record<NotifyEventName, string> = {
  'connection.login_required': 'A connection needs a new sign-in',
  'app.rejected': 'The app registration is rejected',
  'app.secret_expiring': 'The app secret expires',
  'connection.idle': 'A connection is about to expire unused',
  'upstream.outage': 'The provider is failing',
  'upstream.recovered': 'The provider answers again',
  'connection.revoked': 'A connection was revoked',
  'connection.created': 'A connection was created',
  'notify.test': 'Test notification',
};

const NTFY_PRIORITY: Record<Severity, string> = { critical: '5', warning: '4', info: '3' };
const NTFY_TAGS: Record<Severity, string> = { critical: 'rotating_light', warning: 'warning', info: 'information_source' };

export function title(n: Notification): string {
  return `broker: ${TITLES[n.event]}`;
}

/** One line of text: message, then the hint. */
export function plainText(n: Notification): string {
  return n.hint ? `${n.message} ${n.hint}` : n.message;
}

export function render(n: Notification, format: Format, url?: string): { body: string; headers: Record<string, string> } {
  switch (format) {
    case 'ntfy':
      // Header values must be plain ASCII; the titles are.
      return {
        body: n.hint ? `${n.message}\n\n${n.hint}` : n.message,
        headers: {
          'content-type': 'text/plain; charset=utf-8',
          Title: title(n),
          Priority: NTFY_PRIORITY[n.severity],
          Tags: n.event === 'upstream.recovered' ? 'white_check_mark' : NTFY_TAGS[n.severity],
        },
      };
    case 'text': {
      const text = `${title(n)}\n${plainText(n)}`;
      // Discord's own webhook field is `content`; Slack's is `text`. Each ignores the other's.
      const discord = url !== undefined && /(^|\.)discord(app)?\.com$/i.test(new URL(url).hostname);
      return { body: JSON.stringify(discord ? { text, content: text } : { text }), headers: { 'content-type': 'application/json' } };
    }
    default:
      return { body: JSON.stringify(n), headers: { 'content-type': 'application/json' } };
  }
}
